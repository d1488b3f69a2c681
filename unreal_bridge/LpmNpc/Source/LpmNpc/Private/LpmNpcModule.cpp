#include "LpmNpcModule.h"

#include "HAL/PlatformProcess.h"
#include "Interfaces/IPluginManager.h"
#include "Misc/Paths.h"
#include "lpm_bridge.h"

DEFINE_LOG_CATEGORY(LogLpmNpc);

namespace
{
bool GBridgeAvailable = false;
}

void FLpmNpcModule::StartupModule()
{
#if LPM_NPC_BRIDGE_DLL
	// Delay-loaded: look in the plugin's staged library (editor), then next to the game binary.
	const FString PluginDir = IPluginManager::Get().FindPlugin(TEXT("LpmNpc"))->GetBaseDir();
	const FString Staged = FPaths::Combine(PluginDir, TEXT("Source/ThirdParty/LpmBridge/lib/Win64/lpm_bridge.dll"));
	BridgeHandle = FPlatformProcess::GetDllHandle(*Staged);
	if (BridgeHandle == nullptr)
	{
		BridgeHandle = FPlatformProcess::GetDllHandle(TEXT("lpm_bridge.dll"));
	}
	if (BridgeHandle == nullptr)
	{
		UE_LOG(LogLpmNpc, Error, TEXT("lpm_bridge.dll not found (looked at %s and next to the executable)"), *Staged);
		return;
	}
#endif
	const uint32 Version = lpm_bridge_abi_version();
	if (Version != LPM_BRIDGE_ABI_VERSION)
	{
		UE_LOG(LogLpmNpc, Error, TEXT("lpm_bridge ABI version %u, the plugin was built against %d: restage bridge_core"),
			Version, LPM_BRIDGE_ABI_VERSION);
		return;
	}
	GBridgeAvailable = true;
}

void FLpmNpcModule::ShutdownModule()
{
	GBridgeAvailable = false;
	if (BridgeHandle != nullptr)
	{
		FPlatformProcess::FreeDllHandle(BridgeHandle);
		BridgeHandle = nullptr;
	}
}

bool FLpmNpcModule::IsBridgeAvailable()
{
	return GBridgeAvailable;
}

IMPLEMENT_MODULE(FLpmNpcModule, LpmNpc)
