"""The engine plugins stay consistent with bridge_core's C ABI (bridge_core/include/lpm_bridge.h).

Unreal cannot be compiled here, and Unity's C# only partly (CI compiles the engine-agnostic part
with mcs), so these checks read the sources: every lpm_* / LPM_* name the Unreal plugin uses is
declared in the header; the Unity bindings import every function of the header under its own
name, and each interop struct has the same fields, types and sizes as its C twin; the Unity
package has its manifest, asmdefs and a .meta for every asset.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "bridge_core" / "include" / "lpm_bridge.h"
UNREAL = ROOT / "unreal_bridge" / "LpmNpc"
UNITY = ROOT / "unity_bridge"
NATIVE_BRIDGE = UNITY / "Runtime" / "Internal" / "NativeBridge.cs"


def _strip_c_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _header() -> dict[str, set[str] | dict[str, list[tuple[str, str]]]]:
    text = _strip_c_comments(HEADER.read_text())
    functions = set(re.findall(r"LPM_BRIDGE_API\s+[\w\s\*]*?\b(lpm_\w+)\s*\(", text))
    types = set(re.findall(r"\b(lpm_\w+)\s*;", text)) | set(
        re.findall(r"typedef\s+struct\s+(lpm_\w+)", text)
    )
    types |= set(re.findall(r"typedef\s+enum\s+(lpm_\w+)", text))
    types |= set(re.findall(r"\(\s*\*\s*(lpm_\w+)\s*\)", text))  # function pointer typedefs
    constants = set(re.findall(r"^\s*(LPM_\w+)\s*=", text, flags=re.M))
    constants |= set(re.findall(r"#define\s+(LPM_\w+)", text))
    structs: dict[str, list[tuple[str, str]]] = {}
    for name, body in re.findall(
        r"typedef\s+struct\s+(lpm_\w+)\s*\{(.*?)\}\s*\1\s*;", text, flags=re.S
    ):
        fields = []
        for decl in body.split(";"):
            decl = " ".join(decl.split())
            if not decl:
                continue
            m = re.match(r"(.+?)\s*\b(\w+)\s*(\[\s*(\d+)\s*\])?$", decl)
            assert m, f"cannot parse field {decl!r} of {name}"
            ctype = m.group(1).strip()
            if m.group(4):
                ctype = f"{ctype}[{m.group(4)}]"
            fields.append((m.group(2), ctype))
        structs[name] = fields
    return {"functions": functions, "types": types, "constants": constants, "structs": structs}


def test_header_parses_into_the_whole_api():
    h = _header()
    assert {"lpm_connect", "lpm_session_open", "lpm_session_poll_frame", "lpm_ring_read_slot"} <= h[
        "functions"
    ]
    assert len(h["functions"]) == 28
    assert set(h["structs"]) == {
        "lpm_character_info",
        "lpm_connect_options",
        "lpm_session_options",
        "lpm_session_info",
        "lpm_frame_info",
        "lpm_event",
        "lpm_close_info",
        "lpm_ring_info",
    }
    assert ("text", "char[256]") in h["structs"]["lpm_event"]
    assert {"LPM_OK", "LPM_ERR_RING_BUSY", "LPM_TRACK_SPEAK", "LPM_SAMPLE_RATE"} <= h["constants"]


# ---- Unreal ----------------------------------------------------------------------------------------


def _unreal_sources() -> list[Path]:
    files = sorted((UNREAL / "Source" / "LpmNpc").rglob("*"))
    return [p for p in files if p.suffix in {".h", ".cpp"}]


def test_unreal_plugin_calls_only_names_of_lpm_bridge_h():
    h = _header()
    build_cs = (UNREAL / "Source" / "LpmNpc" / "LpmNpc.Build.cs").read_text()
    defined_by_build = set(re.findall(r'PublicDefinitions\.Add\("(\w+)=', build_cs))
    known = h["functions"] | h["types"] | h["constants"] | defined_by_build
    calls: set[str] = set()
    unknown: list[str] = []
    for path in _unreal_sources():
        text = _strip_c_comments(path.read_text())
        text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)  # names inside strings are not calls
        for name in re.findall(r"\b((?:lpm|LPM)_\w+)\b", text):
            if name.startswith("LPM_NPC_API") or name == "LPM_BRIDGE_H":
                continue
            if name not in known:
                unknown.append(f"{path.relative_to(ROOT)}: {name}")
        for name in re.findall(r"\b(lpm_\w+)\s*\(", text):
            calls.add(name)
            if name not in h["functions"]:
                unknown.append(
                    f"{path.relative_to(ROOT)}: {name}() is not a function of lpm_bridge.h"
                )
    assert not unknown, "names the header does not declare:\n" + "\n".join(unknown)
    # The plugin really goes through the bridge for each of its features.
    assert {
        "lpm_connect_with_options",
        "lpm_session_open",
        "lpm_session_close",
        "lpm_session_poll_frame",
        "lpm_session_poll_event",
        "lpm_session_push_audio_f32",
        "lpm_session_segment_end",
        "lpm_session_interrupt",
        "lpm_session_set_prompt",
        "lpm_bridge_abi_version",
    } <= calls


def test_unreal_plugin_files_are_complete():
    plugin = json.loads((UNREAL / "LpmNpc.uplugin").read_text())
    assert [m["Name"] for m in plugin["Modules"]] == ["LpmNpc"]
    assert {"Name": "AudioCapture", "Enabled": True} in plugin["Plugins"]
    build_cs = (UNREAL / "Source" / "LpmNpc" / "LpmNpc.Build.cs").read_text()
    assert "public class LpmNpc : ModuleRules" in build_cs
    assert "lpm_bridge.lib" in build_cs and "liblpm_bridge.so" in build_cs
    public = {p.name for p in (UNREAL / "Source" / "LpmNpc" / "Public").iterdir()}
    private = {p.name for p in (UNREAL / "Source" / "LpmNpc" / "Private").iterdir()}
    assert {"LpmNpcComponent.h", "LpmNpcSettings.h", "LpmNpcModule.h", "LpmNpcTypes.h"} <= public
    assert {"LpmNpcComponent.cpp", "LpmNpcModule.cpp", "LpmNpcNative.cpp"} <= private
    component = (UNREAL / "Source" / "LpmNpc" / "Private" / "LpmNpcComponent.cpp").read_text()
    assert "ENQUEUE_RENDER_COMMAND" in component and "RHIUpdateTexture2D" in component
    # Every plugin-local include names a file of the module (engine headers cannot be checked here).
    local = public | private | {"lpm_bridge.h"}
    engine_prefixes = (
        "Modules/",
        "HAL/",
        "Interfaces/",
        "Misc/",
        "Engine/",
        "Components/",
        "Async/",
        "Kismet/",
        "Sound/",
        "GameFramework/",
    )
    for path in _unreal_sources():
        for include in re.findall(r'#include\s+"([^"]+)"', path.read_text()):
            if include.endswith(".generated.h"):
                assert include.replace(".generated.h", ".h") == path.name, (
                    f"{path.name} includes {include}"
                )
            elif "/" not in include and include.startswith("Lpm"):
                assert include in local, f"{path.name} includes a missing {include}"
            else:
                assert (
                    include.startswith(engine_prefixes)
                    or include in local
                    or include
                    in {
                        "CoreMinimal.h",
                        "RHI.h",
                        "RenderingThread.h",
                        "TextureResource.h",
                        "AudioCaptureCore.h",
                        "AudioDevice.h",
                    }
                ), f"{path.name} includes an unexpected {include}"
    readme = (ROOT / "unreal_bridge" / "README.md").read_text()
    assert "Win64" in readme and "Linux" in readme and "The first level" in readme


# ---- Unity -------------------------------------------------------------------------------------------

_CS_FOR_C = {
    "uint64_t": "ulong",
    "int64_t": "long",
    "uint32_t": "uint",
    "int32_t": "int",
    "double": "double",
    "const char*": "IntPtr",
    "const uint8_t*": "IntPtr",
}


def _cs_structs() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """C twin name -> (C# name, [(field, C# type or byte[N])])."""
    text = NATIVE_BRIDGE.read_text()
    out = {}
    pattern = r"C twin: (lpm_\w+)[^\n]*\n\s*\[StructLayout\(LayoutKind\.Sequential\)\]\s*public struct (\w+)\s*\{(.*?)\n    \}"
    for twin, name, body in re.findall(pattern, text, flags=re.S):
        fields = []
        for line in body.splitlines():
            m = re.match(
                r"\s*(\[MarshalAs\(UnmanagedType\.ByValArray, SizeConst = (\d+)\)\]\s*)?public (\w+(?:\[\])?) (\w+);",
                line,
            )
            if m:
                ctype = f"byte[{m.group(2)}]" if m.group(1) else m.group(3)
                fields.append((m.group(4), ctype))
        out[twin] = (name, fields)
    return out


def test_unity_interop_structs_match_their_c_twins():
    h = _header()
    cs = _cs_structs()
    assert set(cs) == set(h["structs"]), "every C struct has exactly one C# twin"
    for twin, c_fields in h["structs"].items():
        name, cs_fields = cs[twin]
        assert len(cs_fields) == len(c_fields), (
            f"{name} has {len(cs_fields)} fields, {twin} {len(c_fields)}"
        )
        for (c_name, c_type), (cs_name, cs_type) in zip(c_fields, cs_fields):
            if c_type.startswith("char["):
                expected = "byte" + c_type[4:]
            else:
                expected = _CS_FOR_C[c_type]
            assert cs_type == expected, (
                f"{name}.{cs_name} is {cs_type}, {twin}.{c_name} is {c_type}"
            )
            assert cs_name.lower().replace("utf8", "") == c_name.replace("_", ""), (
                f"{name}.{cs_name} vs {c_name}"
            )


def test_unity_binds_every_function_once_under_its_own_name():
    h = _header()
    text = NATIVE_BRIDGE.read_text()
    imports = re.findall(r'EntryPoint = "(\w+)"\)\]\s*internal static extern \w+ (\w+)\(', text)
    assert sorted(e for e, _ in imports) == sorted(h["functions"])
    assert all(entry == method for entry, method in imports)
    assert text.count("CallingConvention = CallingConvention.Cdecl") >= len(imports)
    # Every DllImport of the package is in NativeBridge.cs.
    for path in UNITY.rglob("*.cs"):
        if path != NATIVE_BRIDGE:
            assert "DllImport" not in path.read_text(), f"{path.relative_to(ROOT)} has a DllImport"


def test_unity_engine_agnostic_code_does_not_use_unity():
    for folder in ("Runtime/Core", "Runtime/Internal"):
        for path in (UNITY / folder).glob("*.cs"):
            text = path.read_text()
            assert "UnityEngine" not in text and "UnityEditor" not in text, path.name


def _load_make_meta():
    spec = importlib.util.spec_from_file_location("make_meta", UNITY / "ci" / "make_meta.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_unity_package_layout_and_meta_files():
    package = json.loads((UNITY / "package.json").read_text())
    assert package["name"] == "com.lpmnpc.bridge"
    assert package["samples"][0]["path"] == "Samples~/BasicScene"
    asmdefs = {
        "Runtime/LpmNpc.Runtime.asmdef": "LpmNpc.Runtime",
        "Editor/LpmNpc.Editor.asmdef": "LpmNpc.Editor",
        "Tests/Runtime/LpmNpc.Tests.asmdef": "LpmNpc.Tests",
    }
    for rel, name in asmdefs.items():
        assert json.loads((UNITY / rel).read_text())["name"] == name
    assert json.loads((UNITY / "Editor/LpmNpc.Editor.asmdef").read_text())["includePlatforms"] == [
        "Editor"
    ]
    # Unity skips ci/ (an unmet define constraint), so its C# never compiles into a game.
    assert json.loads((UNITY / "ci/LpmNpc.Ci.asmdef").read_text())["defineConstraints"]

    make_meta = _load_make_meta()
    missing = [p for p in make_meta.wanted() if not Path(str(p) + ".meta").exists()]
    assert not missing, f"missing .meta files (run python3 unity_bridge/ci/make_meta.py): {missing}"
    guids: dict[str, Path] = {}
    for meta in UNITY.rglob("*.meta"):
        assert Path(str(meta)[: -len(".meta")]).exists(), f"{meta} has no asset"
        guid = re.search(r"^guid: ([0-9a-f]{32})$", meta.read_text(), flags=re.M)
        assert guid, f"{meta} has no guid"
        assert guid.group(1) not in guids, f"{meta} and {guids[guid.group(1)]} share a guid"
        guids[guid.group(1)] = meta
    scene = (UNITY / "Samples~/BasicScene/BasicScene.unity").read_text()
    for ref in re.findall(r"guid: ([0-9a-f]{32}), type: [23]", scene):
        assert ref in guids, f"the sample scene references an unknown guid {ref}"


@pytest.mark.parametrize("path", ["unity_bridge/README.md", "bridge_core/README.md"])
def test_readmes_exist(path):
    text = (ROOT / path).read_text()
    assert "ci/test.sh" in text or "ctest" in text
