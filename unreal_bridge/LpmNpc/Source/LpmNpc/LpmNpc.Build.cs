// The LpmNpc runtime module: links the bridge_core C library (include/lpm_bridge.h), staged into
// Source/ThirdParty/LpmBridge by unreal_bridge/stage_bridge_core.sh (Linux) or .ps1 (Win64).
using System.IO;
using UnrealBuildTool;

public class LpmNpc : ModuleRules
{
	public LpmNpc(ReadOnlyTargetRules Target) : base(Target)
	{
		PCHUsage = PCHUsageMode.UseExplicitOrSharedPCHs;
		CppStandard = CppStandardVersion.Cpp17;

		PublicDependencyModuleNames.AddRange(new string[] { "Core", "CoreUObject", "Engine", "DeveloperSettings" });
		PrivateDependencyModuleNames.AddRange(new string[] { "RenderCore", "RHI", "Projects", "AudioMixer", "AudioCaptureCore", "AudioCapture" });

		string BridgeDir = Path.GetFullPath(Path.Combine(ModuleDirectory, "..", "ThirdParty", "LpmBridge"));
		string Header = Path.Combine(BridgeDir, "include", "lpm_bridge.h");
		if (!File.Exists(Header))
		{
			throw new BuildException("LpmNpc: " + Header + " is missing. Build and stage bridge_core first: " +
				"bash unreal_bridge/stage_bridge_core.sh (Linux) or unreal_bridge\\stage_bridge_core.ps1 (Win64); see unreal_bridge/README.md.");
		}
		PublicIncludePaths.Add(Path.Combine(BridgeDir, "include"));

		if (Target.Platform == UnrealTargetPlatform.Win64)
		{
			string LibDir = Path.Combine(BridgeDir, "lib", "Win64");
			PublicAdditionalLibraries.Add(Path.Combine(LibDir, "lpm_bridge.lib"));
			// Loaded by FLpmNpcModule::StartupModule from the plugin (editor) or next to the game.
			PublicDelayLoadDLLs.Add("lpm_bridge.dll");
			RuntimeDependencies.Add("$(BinaryOutputDir)/lpm_bridge.dll", Path.Combine(LibDir, "lpm_bridge.dll"));
			PublicDefinitions.Add("LPM_NPC_BRIDGE_DLL=1");
		}
		else if (Target.Platform == UnrealTargetPlatform.Linux)
		{
			string LibDir = Path.Combine(BridgeDir, "lib", "Linux");
			PublicAdditionalLibraries.Add(Path.Combine(LibDir, "liblpm_bridge.so"));
			RuntimeDependencies.Add("$(BinaryOutputDir)/liblpm_bridge.so", Path.Combine(LibDir, "liblpm_bridge.so"));
			PublicDefinitions.Add("LPM_NPC_BRIDGE_DLL=0");
		}
		else
		{
			throw new BuildException("LpmNpc: bridge_core is staged for Win64 and Linux only (see unreal_bridge/README.md).");
		}
	}
}
