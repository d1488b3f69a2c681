// Blueprint-facing enums of the LpmNpc plugin; each mirrors an enum of lpm_bridge.h.
#pragma once

#include "CoreMinimal.h"
#include "LpmNpcTypes.generated.h"

/** Mirrors lpm_delivery. */
UENUM(BlueprintType)
enum class ELpmNpcDelivery : uint8
{
	Auto = 0 UMETA(ToolTip = "Shared memory when the daemon is on this machine, inline otherwise"),
	Inline = 1 UMETA(ToolTip = "Pixels in the gRPC stream"),
	SharedMemory = 2 UMETA(ToolTip = "Pixels in the daemon's shared-memory ring"),
};

/** Mirrors lpm_idle_policy. */
UENUM(BlueprintType)
enum class ELpmNpcIdlePolicy : uint8
{
	Default = 0,
	Animate = 1 UMETA(ToolTip = "Idle frames may be skipped when the daemon is overloaded"),
	AnimatePriority = 2 UMETA(ToolTip = "Idle frames are never skipped (the character the camera is on)"),
};
