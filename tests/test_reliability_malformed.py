"""Undecodable request bytes, sent to every method the daemon lists by reflection, get
INVALID_ARGUMENT with a message naming the request's message type (never UNKNOWN or INTERNAL)."""

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc.config import ServeConfig
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.serve.client import LpmClient, header_event
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import sheet_images

# Each breaks the wire format itself, whatever the message type: a varint longer than 10 bytes,
# a length-delimited field longer than the message, wire type 7 (does not exist).
UNDECODABLE = (b"\x08" + b"\xff" * 11, b"\x0a\x7fab", b"\x0f")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    with ServerThread(
        generator=StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny"),
        store_dir=str(store),
        config=ServeConfig(degrade_lag_chunks=1e6, recover_lag_chunks=1e6),
    ) as running:
        yield running


def _methods(channel: grpc.Channel) -> list[tuple[str, object]]:
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    methods = []
    for service_name in database.get_services():
        service = pool.FindServiceByName(service_name)
        methods.extend((f"/{service.full_name}/{m.name}", m) for m in service.methods)
    return methods


def _call(channel: grpc.Channel, path: str, method, payload: bytes) -> grpc.RpcError:
    if method.client_streaming and method.server_streaming:
        call = channel.stream_stream(path)(iter([payload]), timeout=10)
        return pytest.raises(grpc.RpcError, list, call).value
    if method.client_streaming:
        return pytest.raises(
            grpc.RpcError, channel.stream_unary(path), iter([payload]), timeout=10
        ).value
    if method.server_streaming:
        call = channel.unary_stream(path)(payload, timeout=10)
        return pytest.raises(grpc.RpcError, list, call).value
    return pytest.raises(grpc.RpcError, channel.unary_unary(path), payload, timeout=10).value


def test_every_method_answers_undecodable_bytes_with_invalid_argument(server):
    with grpc.insecure_channel(server.address) as channel:
        methods = _methods(channel)
        paths = {path for path, _ in methods}
        # Reflection must have found ours, health and itself, else this test would prove little.
        assert {
            "/lpm_npc.v1.Sessions/Converse",
            "/lpm_npc.v1.Sessions/GetServerStatus",
            "/lpm_npc.v1.Characters/RegisterCharacter",
            "/grpc.health.v1.Health/Check",
        } <= paths
        assert len(methods) >= 10
        for path, method in methods:
            for payload in UNDECODABLE:
                error = _call(channel, path, method, payload)
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (path, payload, error)
                assert method.input_type.full_name in error.details(), (path, error.details())


def test_undecodable_event_after_a_valid_header_ends_the_stream_with_invalid_argument(server):
    with LpmClient(server.address, timeout=30) as client:
        client.register_images("ann", sheet_images(seed=1))
        session_id = client.open_session("ann").session_id
    with grpc.insecure_channel(server.address) as channel:
        converse = channel.stream_stream("/lpm_npc.v1.Sessions/Converse")
        requests = iter([header_event(session_id).SerializeToString(), UNDECODABLE[1]])
        call = converse(requests, timeout=30)
        error = pytest.raises(grpc.RpcError, list, call).value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert spb.ClientEvent.DESCRIPTOR.full_name in error.details()
