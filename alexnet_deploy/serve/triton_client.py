"""Drive a running Triton server: readiness checks with bounded timeouts, model metadata, and
infer callables for bench (one client per concurrent worker)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError, UsageError


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # "http" or "grpc"
    address: str  # host:port

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parsed = urlparse(url if "://" in url else f"http://{url}")
        if parsed.scheme not in ("http", "grpc") or not parsed.hostname or not parsed.port:
            raise UsageError(f"--triton {url!r}: expected http://HOST:PORT or grpc://HOST:PORT")
        return cls(parsed.scheme, f"{parsed.hostname}:{parsed.port}")


def _module(protocol: str):
    try:
        if protocol == "http":
            import tritonclient.http as client
        else:
            import tritonclient.grpc as client
    except ImportError:
        raise AlexnetDeployError(
            "tritonclient is not installed", hint="pip install 'alexnet-deploy[triton]'"
        ) from None
    return client


def make_client(endpoint: Endpoint, timeout: float = C.TRITON_TIMEOUT_S):
    client = _module(endpoint.protocol)
    if endpoint.protocol == "http":
        return client.InferenceServerClient(
            endpoint.address, connection_timeout=timeout, network_timeout=timeout
        )
    return client.InferenceServerClient(endpoint.address)


@dataclass(frozen=True)
class ServedModel:
    endpoint: Endpoint
    name: str
    input_name: str
    output_name: str
    image_shape: tuple[int, ...]
    max_batch_size: int
    # unbatched by Triton (max_batch_size 0): the one batch its dims fix (None: Triton batches)
    static_batch: int | None = None


def connect(url: str, model: str, timeout: float = C.TRITON_TIMEOUT_S) -> ServedModel:
    """Check that the server answers and the model is ready; read its tensors."""
    endpoint = Endpoint.parse(url)
    client = make_client(endpoint, timeout)
    try:
        live = (
            client.is_server_live()
            if endpoint.protocol == "http"
            else client.is_server_live(client_timeout=timeout)
        )
    except Exception as err:  # socket, gevent and gRPC errors all mean "not reachable"
        raise AlexnetDeployError(
            f"cannot reach Triton at {url} within {timeout:g} s ({type(err).__name__}: {str(err).splitlines()[0][:120]})",
            hint="start the server (see README, 'Serving with Triton') or check the URL and port",
        ) from None
    if not live:
        raise AlexnetDeployError(f"Triton at {url} answers but is not live")
    if not client.is_model_ready(model):
        try:
            index = client.get_model_repository_index()
            entries = index if isinstance(index, list) else index.models
            names = sorted({e["name"] if isinstance(e, dict) else e.name for e in entries})
            hint = f"models on this server: {', '.join(names) or 'none'}"
        except Exception as err:  # the index is a hint only; servers may restrict it
            hint = f"check --triton-model (the server would not list its models: {str(err).splitlines()[0][:80]})"
        raise AlexnetDeployError(f"model {model!r} is not ready on Triton at {url}", hint=hint)
    meta = client.get_model_metadata(model)
    config = client.get_model_config(model)
    if endpoint.protocol == "grpc":
        from google.protobuf.json_format import MessageToDict

        meta, config = (
            MessageToDict(meta, preserving_proto_field_name=True),
            MessageToDict(config.config, preserving_proto_field_name=True),
        )
    inputs, outputs = meta["inputs"], meta["outputs"]
    shape = tuple(int(d) for d in inputs[0]["shape"][1:])
    max_batch_size, first = int(config.get("max_batch_size", 0)), int(inputs[0]["shape"][0])
    return ServedModel(
        endpoint,
        model,
        inputs[0]["name"],
        outputs[0]["name"],
        shape,
        max_batch_size,
        first if max_batch_size == 0 and first > 0 else None,
    )


def infer_callable(served: ServedModel):
    """A function batch -> logits. Each thread that calls it gets its own client: the HTTP
    client runs on gevent, whose connections belong to the thread that made them."""
    module = _module(served.endpoint.protocol)
    local = threading.local()

    def infer(batch: np.ndarray) -> np.ndarray:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = make_client(served.endpoint)
        tensor = module.InferInput(served.input_name, list(batch.shape), "FP32")
        if served.endpoint.protocol == "http":
            tensor.set_data_from_numpy(batch, binary_data=True)
            wanted = [module.InferRequestedOutput(served.output_name, binary_data=True)]
        else:
            tensor.set_data_from_numpy(batch)
            wanted = [module.InferRequestedOutput(served.output_name)]
        return client.infer(served.name, [tensor], outputs=wanted).as_numpy(served.output_name)

    return infer


def perf_analyzer_command(served: ServedModel, batch: int, concurrency: int) -> str:
    """The equivalent perf_analyzer invocation, for users who prefer Triton's own tool."""
    return (
        f"perf_analyzer -m {served.name} -u {served.endpoint.address} -i {served.endpoint.protocol} "
        f"-b {batch} --concurrency-range {concurrency} --percentile=99 --measurement-interval 5000"
    )
