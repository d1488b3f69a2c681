from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PrepareStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PREPARE_STAGE_UNSPECIFIED: _ClassVar[PrepareStage]
    PREPARE_STAGE_LOADING: _ClassVar[PrepareStage]
    PREPARE_STAGE_ENCODING: _ClassVar[PrepareStage]
    PREPARE_STAGE_DONE: _ClassVar[PrepareStage]
PREPARE_STAGE_UNSPECIFIED: PrepareStage
PREPARE_STAGE_LOADING: PrepareStage
PREPARE_STAGE_ENCODING: PrepareStage
PREPARE_STAGE_DONE: PrepareStage

class SheetImage(_message.Message):
    __slots__ = ("role", "label", "filename", "content")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    role: str
    label: str
    filename: str
    content: bytes
    def __init__(self, role: _Optional[str] = ..., label: _Optional[str] = ..., filename: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class SheetImages(_message.Message):
    __slots__ = ("images",)
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[SheetImage]
    def __init__(self, images: _Optional[_Iterable[_Union[SheetImage, _Mapping]]] = ...) -> None: ...

class SheetFile(_message.Message):
    __slots__ = ("filename", "content")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    filename: str
    content: bytes
    def __init__(self, filename: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class SheetManifest(_message.Message):
    __slots__ = ("manifest", "files")
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    manifest: bytes
    files: _containers.RepeatedCompositeFieldContainer[SheetFile]
    def __init__(self, manifest: _Optional[bytes] = ..., files: _Optional[_Iterable[_Union[SheetFile, _Mapping]]] = ...) -> None: ...

class RegisterCharacterRequest(_message.Message):
    __slots__ = ("character_id", "images", "manifest", "display_name")
    CHARACTER_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    character_id: str
    images: SheetImages
    manifest: SheetManifest
    display_name: str
    def __init__(self, character_id: _Optional[str] = ..., images: _Optional[_Union[SheetImages, _Mapping]] = ..., manifest: _Optional[_Union[SheetManifest, _Mapping]] = ..., display_name: _Optional[str] = ...) -> None: ...

class RegisterCharacterResponse(_message.Message):
    __slots__ = ("character_id", "version", "created", "character")
    CHARACTER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_FIELD_NUMBER: _ClassVar[int]
    character_id: str
    version: str
    created: bool
    character: Character
    def __init__(self, character_id: _Optional[str] = ..., version: _Optional[str] = ..., created: _Optional[bool] = ..., character: _Optional[_Union[Character, _Mapping]] = ...) -> None: ...

class ReferenceInfo(_message.Message):
    __slots__ = ("role", "label", "width", "height", "sha256")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    role: str
    label: str
    width: int
    height: int
    sha256: str
    def __init__(self, role: _Optional[str] = ..., label: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class Character(_message.Message):
    __slots__ = ("character_id", "version", "display_name", "registered_at_unix_ns", "references", "size_bytes", "prepared")
    CHARACTER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_UNIX_NS_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PREPARED_FIELD_NUMBER: _ClassVar[int]
    character_id: str
    version: str
    display_name: str
    registered_at_unix_ns: int
    references: _containers.RepeatedCompositeFieldContainer[ReferenceInfo]
    size_bytes: int
    prepared: bool
    def __init__(self, character_id: _Optional[str] = ..., version: _Optional[str] = ..., display_name: _Optional[str] = ..., registered_at_unix_ns: _Optional[int] = ..., references: _Optional[_Iterable[_Union[ReferenceInfo, _Mapping]]] = ..., size_bytes: _Optional[int] = ..., prepared: _Optional[bool] = ...) -> None: ...

class GetCharacterRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class ListCharactersRequest(_message.Message):
    __slots__ = ("character_id",)
    CHARACTER_ID_FIELD_NUMBER: _ClassVar[int]
    character_id: str
    def __init__(self, character_id: _Optional[str] = ...) -> None: ...

class ListCharactersResponse(_message.Message):
    __slots__ = ("characters",)
    CHARACTERS_FIELD_NUMBER: _ClassVar[int]
    characters: _containers.RepeatedCompositeFieldContainer[Character]
    def __init__(self, characters: _Optional[_Iterable[_Union[Character, _Mapping]]] = ...) -> None: ...

class DeleteCharacterRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class DeleteCharacterResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, versions: _Optional[_Iterable[str]] = ...) -> None: ...

class PrepareCharacterRequest(_message.Message):
    __slots__ = ("ref",)
    REF_FIELD_NUMBER: _ClassVar[int]
    ref: str
    def __init__(self, ref: _Optional[str] = ...) -> None: ...

class PrepareProgress(_message.Message):
    __slots__ = ("stage", "fraction", "message", "character")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CHARACTER_FIELD_NUMBER: _ClassVar[int]
    stage: PrepareStage
    fraction: float
    message: str
    character: Character
    def __init__(self, stage: _Optional[_Union[PrepareStage, str]] = ..., fraction: _Optional[float] = ..., message: _Optional[str] = ..., character: _Optional[_Union[Character, _Mapping]] = ...) -> None: ...
