# Builds bridge_core (Release, no tests) with a static vcpkg gRPC and stages its header, import
# library and DLL where LpmNpc.Build.cs looks: LpmNpc\Source\ThirdParty\LpmBridge\{include,lib\Win64}.
#   .\unreal_bridge\stage_bridge_core.ps1 -Vcpkg C:\src\vcpkg
param([Parameter(Mandatory = $true)][string]$Vcpkg)
$ErrorActionPreference = "Stop"
$Here = Split-Path -Parent $MyInvocation.MyCommand.Path
$Repo = Split-Path -Parent $Here
$Build = Join-Path $Repo "build\bridge_core_unreal"
$Stage = Join-Path $Here "LpmNpc\Source\ThirdParty\LpmBridge"
& "$Vcpkg\vcpkg.exe" install grpc:x64-windows-static-md
if ($LASTEXITCODE -ne 0) { throw "vcpkg install grpc failed" }
cmake -S (Join-Path $Repo "bridge_core") -B $Build -A x64 -DLPM_BRIDGE_TESTS=OFF `
  "-DCMAKE_TOOLCHAIN_FILE=$Vcpkg\scripts\buildsystems\vcpkg.cmake" -DVCPKG_TARGET_TRIPLET=x64-windows-static-md
if ($LASTEXITCODE -ne 0) { throw "cmake configure failed" }
cmake --build $Build --config Release --target lpm_bridge
if ($LASTEXITCODE -ne 0) { throw "cmake build failed" }
New-Item -ItemType Directory -Force -Path (Join-Path $Stage "include"), (Join-Path $Stage "lib\Win64") | Out-Null
Copy-Item (Join-Path $Repo "bridge_core\include\lpm_bridge.h") (Join-Path $Stage "include")
Copy-Item (Join-Path $Build "Release\lpm_bridge.dll") (Join-Path $Stage "lib\Win64")
Copy-Item (Join-Path $Build "Release\lpm_bridge.lib") (Join-Path $Stage "lib\Win64")
Write-Host "staged bridge_core into $Stage"
