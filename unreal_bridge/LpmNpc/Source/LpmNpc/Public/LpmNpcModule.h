// The LpmNpc module: loads the bridge_core library (Win64: a delay-loaded DLL) and checks that
// its C ABI is the one this plugin was built against.
#pragma once

#include "Modules/ModuleManager.h"

DECLARE_LOG_CATEGORY_EXTERN(LogLpmNpc, Log, All);

class FLpmNpcModule : public IModuleInterface
{
public:
	virtual void StartupModule() override;
	virtual void ShutdownModule() override;

	/** True once the library is loaded and its ABI version matches lpm_bridge.h. */
	static bool IsBridgeAvailable();

private:
	void* BridgeHandle = nullptr;
};
