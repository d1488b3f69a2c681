// Project Settings > Plugins > LPM NPC: the daemon connection every ULpmNpcComponent uses unless
// it overrides the address.
#pragma once

#include "CoreMinimal.h"
#include "Engine/DeveloperSettings.h"
#include "LpmNpcTypes.h"
#include "LpmNpcSettings.generated.h"

UCLASS(Config = Game, DefaultConfig, meta = (DisplayName = "LPM NPC"))
class LPMNPC_API ULpmNpcSettings : public UDeveloperSettings
{
	GENERATED_BODY()

public:
	ULpmNpcSettings();

	/** host:port of `lpm-npc serve`. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection")
	FString DaemonAddress;

	/** Bearer token if the daemon was started with --token (empty = none). */
	UPROPERTY(Config, EditAnywhere, Category = "Connection")
	FString Token;

	/** Connection and call timeout. */
	UPROPERTY(Config, EditAnywhere, Category = "Connection", meta = (ClampMin = "100", ClampMax = "600000", Units = "ms"))
	int32 TimeoutMs;

	/** Auto: shared memory when the daemon is on this machine, frames in the stream otherwise. */
	UPROPERTY(Config, EditAnywhere, Category = "Frames")
	ELpmNpcDelivery Delivery;

	virtual FName GetCategoryName() const override { return TEXT("Plugins"); }
};
