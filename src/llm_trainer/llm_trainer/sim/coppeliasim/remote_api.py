"""A minimal client of CoppeliaSim's ZeroMQ remote API (protocol version 2, CoppeliaSim 4.6 and later).

The wire protocol (``PROTOCOL.md`` of CoppeliaRobotics/zmqRemoteApi): a ZMQ REQ socket connected to the
server's REP socket (``tcp://host:23000`` by default); every message is one CBOR map.

Request:  ``{"func": "sim.getObject", "args": ["/Floor"], "argsL": 1, "uuid": "<client uuid>"}``, and on the
          first request only also ``"ver": 2, "lang": "python", "timeout": <seconds>``.
Reply:    ``{"ret": [values...]}``; or ``{"err": "message"}``; or ``{"func": "_*wait*_", "args": []}``, which
          the client answers with ``{"func": "_*executed*_", "args": []}`` until the real reply comes (the
          server's ``sim.step`` waits like this for the next simulation step); ``_*repeat*_`` asks the
          client to send its request again. A server of protocol 1 answers ``{"success": false, "error": ...}``.

``require("sim")`` asks the server to load a namespace (``zmqRemoteApi.require``) and describe it
(``zmqRemoteApi.info``: a map of ``{"func": {}}`` and ``{"const": value}`` entries), then returns an object
whose attributes are those functions and constants, as the official client does. Script callbacks (Python
functions passed as arguments) are not supported.
"""

from __future__ import annotations

import uuid as uuid_lib
from typing import Any

import numpy as np

PROTOCOL_VERSION = 2
DEFAULT_PORT = 23000
WAIT, REPEAT, EXECUTED = "_*wait*_", "_*repeat*_", "_*executed*_"


class RemoteApiError(RuntimeError):
    """A call failed: the server reported an error, did not answer, or speaks another protocol."""


def _encode_default(encoder, value) -> None:
    """CBOR for numpy values (arrays become lists, numpy scalars plain numbers)."""
    if isinstance(value, np.ndarray):
        encoder.encode(value.tolist())
    elif isinstance(value, np.generic):
        encoder.encode(value.item())
    else:
        raise TypeError(f"cannot send a {type(value).__name__} to CoppeliaSim")


def _unwrap(ret: list) -> Any:
    """The reply's return values as the official client gives them: none -> None, one -> it, more -> a tuple."""
    if not ret:
        return None
    return ret[0] if len(ret) == 1 else tuple(ret)


class RemoteNamespace:
    """A server namespace (``sim``, ``simIK``, ...): its functions are callables, its constants values."""

    def __init__(self, client: RemoteApiClient, name: str, info: dict[str, Any]):
        self._client = client
        self._name = name
        self._consts: dict[str, Any] = {}
        self._funcs: set[str] = set()
        self._subs: dict[str, RemoteNamespace] = {}
        for key, entry in info.items():
            if not isinstance(entry, dict):
                raise RemoteApiError(f"zmqRemoteApi.info({name!r}): entry {key!r} is not a map")
            if set(entry) == {"func"}:
                self._funcs.add(key)
            elif set(entry) == {"const"}:
                self._consts[key] = entry["const"]
            else:
                self._subs[key] = RemoteNamespace(client, f"{name}.{key}", entry)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        if attr in self._consts:
            return self._consts[attr]
        if attr in self._subs:
            return self._subs[attr]
        if attr in self._funcs:
            func = f"{self._name}.{attr}"
            return lambda *args: self._client.call(func, list(args))
        raise AttributeError(f"CoppeliaSim's {self._name!r} has no function or constant {attr!r}")

    def __dir__(self) -> list[str]:
        return sorted({*self._funcs, *self._consts, *self._subs})


class RemoteApiClient:
    """Calls functions of a CoppeliaSim ZMQ remote API server. Not thread-safe: one client per thread."""

    def __init__(
        self,
        host: str = "localhost",
        port: int = DEFAULT_PORT,
        *,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 5.0,
    ):
        import cbor2
        import zmq

        self._cbor, self._zmq = cbor2, zmq
        self.endpoint = f"tcp://{host}:{port}"
        self.timeout_s = float(timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.uuid = str(uuid_lib.uuid4())
        self._context = zmq.Context()
        self._socket = None
        self._sent = 0
        self._connected = False

    # ---------------------------------------------------------------- transport
    def _sock(self):
        if self._socket is None:
            self._socket = self._context.socket(self._zmq.REQ)
            self._socket.setsockopt(self._zmq.LINGER, 0)
            self._socket.connect(self.endpoint)
        return self._socket

    def _send(self, func: str, args: list) -> None:
        req: dict[str, Any] = {"func": func, "args": list(args), "argsL": len(args), "uuid": self.uuid}
        if self._sent == 0:
            req.update(ver=PROTOCOL_VERSION, lang="python", timeout=int(self.timeout_s))
        try:
            raw = self._cbor.dumps(req, default=_encode_default)
        except (TypeError, ValueError) as exc:
            raise RemoteApiError(f"{func}: illegal argument: {exc}") from None
        self._sock().send(raw)
        self._sent += 1

    def _recv(self, func: str) -> dict[str, Any]:
        timeout = self.timeout_s if self._connected else self.connect_timeout_s
        sock = self._sock()
        if not sock.poll(int(timeout * 1000), self._zmq.POLLIN):
            # A REQ socket that sent without a reply cannot send again: start over with a fresh one.
            sock.close(linger=0)
            self._socket, self._sent = None, 0
            raise RemoteApiError(
                f"{func}: no reply from {self.endpoint} within {timeout:g} s (is CoppeliaSim running with "
                "its ZMQ remote API server add-on on that port?)"
            )
        self._connected = True
        reply = self._cbor.loads(sock.recv())
        if not isinstance(reply, dict):
            raise RemoteApiError(f"{func}: malformed reply (not a map): {reply!r}")
        return reply

    def call(self, func: str, args: list | tuple = ()) -> Any:
        """Call ``func`` (e.g. ``"sim.getObject"``) with ``args``; its return values, unwrapped."""
        args = list(args)
        self._send(func, args)
        reply = self._recv(func)
        while "func" in reply:
            if reply["func"] == REPEAT:
                self._send(func, args)
            else:  # WAIT, or a script callback (unsupported: answered with no values)
                self._send(EXECUTED, [])
            reply = self._recv(func)
        if "err" in reply:
            raise RemoteApiError(f"{func}: {reply['err']}")
        if "ret" not in reply:
            if reply.get("success") is False:
                raise RemoteApiError(
                    f"{func}: the server speaks another protocol version ({reply.get('error', 'no message')})"
                )
            raise RemoteApiError(f"{func}: malformed reply (no 'ret', 'err' or 'func'): {reply!r}")
        return _unwrap(list(reply["ret"]))

    # ---------------------------------------------------------------- namespaces
    def getObject(self, name: str) -> RemoteNamespace:  # the official client's name and behaviour
        info = self.call("zmqRemoteApi.info", [name])
        if not isinstance(info, dict):
            raise RemoteApiError(f"zmqRemoteApi.info({name!r}) returned {info!r}, not a map")
        return RemoteNamespace(self, name, info)

    def require(self, name: str) -> RemoteNamespace:
        """Load a namespace on the server (``"sim"``, ``"simIK"``) and return it."""
        self.call("zmqRemoteApi.require", [name])
        return self.getObject(name.split("-")[0])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._context.term()

    def __enter__(self) -> RemoteApiClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
