// Project Settings > Plugins > LPM NPC: the daemon connection every ULpmNpcComponent uses unless
// it overrides the address (the token and TLS settings always come from here).
#pragma once

#include "CoreMinimal.h"
#include "Engine/DeveloperSettings.h"
#include "Engine/EngineTypes.h"
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

	/** Connect with TLS (a daemon started with --tls-cert). On by itself when a TLS file below is set. */
	UPROPERTY(Config, EditAnywhere, Category = "TLS", meta = (DisplayName = "Use TLS"))
	bool bUseTls;

	/** PEM file of the CA that signed the daemon's certificate (empty = the default roots). Relative
	 *  paths are under the project directory; packaged games need the file staged (Project Settings >
	 *  Packaging > Additional Non-Asset Directories to Package). */
	UPROPERTY(Config, EditAnywhere, Category = "TLS", meta = (DisplayName = "TLS CA File", RelativeToGameDir, FilePathFilter = "PEM (*.pem;*.crt)|*.pem;*.crt"))
	FFilePath TlsCaFile;

	/** Mutual TLS (a daemon started with --tls-client-ca): this client's certificate, PEM. Needs the key. */
	UPROPERTY(Config, EditAnywhere, Category = "TLS", meta = (DisplayName = "TLS Client Certificate File", RelativeToGameDir, FilePathFilter = "PEM (*.pem;*.crt)|*.pem;*.crt"))
	FFilePath TlsCertFile;

	/** Mutual TLS: that certificate's private key, unencrypted PEM. */
	UPROPERTY(Config, EditAnywhere, Category = "TLS", meta = (DisplayName = "TLS Client Key File", RelativeToGameDir, FilePathFilter = "PEM key (*.key;*.pem)|*.key;*.pem"))
	FFilePath TlsKeyFile;

	/** The name on the daemon's certificate when it is not the host of the address (e.g. an IP
	 *  address with a certificate for "npc.lan"); empty = the host. */
	UPROPERTY(Config, EditAnywhere, Category = "TLS", meta = (DisplayName = "TLS Server Name"))
	FString TlsServerName;

	/** Auto: shared memory when the daemon is on this machine, frames in the stream otherwise. */
	UPROPERTY(Config, EditAnywhere, Category = "Frames")
	ELpmNpcDelivery Delivery;

	virtual FName GetCategoryName() const override { return TEXT("Plugins"); }
};
