"""A local stand-in for CoppeliaSim's ZeroMQ remote API server, for tests.

It speaks the real server's wire protocol (version 2, as ``PROTOCOL.md`` and the server add-on of
CoppeliaRobotics/zmqRemoteApi describe it): a ZMQ REP socket; every message one CBOR map; requests
``{func, args, argsL, uuid}`` (plus ``ver``, ``lang``, ``timeout`` on a client's first contact); replies
``{ret: [...]}`` or ``{err: "..."}``; ``sim.step`` first answers ``{func: "_*wait*_"}`` and replies for real
once the client has sent ``_*executed*_``; a request without ``uuid`` (protocol 1) gets the real server's
``{success: false, error: ...}``; ``zmqRemoteApi.require`` and ``zmqRemoteApi.info`` describe the ``sim``
namespace as maps of ``{func: {}}`` and ``{const: value}``.

Behind it a tiny kinematic scene: named objects with poses (no physics: objects stay where they are put),
joints that move toward their targets at a fixed speed on every step, vision sensors that return a flat
image and a constant depth, simulation time that advances by ``dt`` per step while the simulation runs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import cbor2
import numpy as np
import zmq

JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1", "panda_finger_joint2")
SIMULATION_STOPPED, SIMULATION_RUNNING = 0, 17  # sim.simulation_stopped, sim.simulation_advancing_running

CONSTANTS = {
    "handle_world": -1,
    "simulation_stopped": SIMULATION_STOPPED,
    "simulation_advancing_running": SIMULATION_RUNNING,
    "primitiveshape_cuboid": 3,
    "primitiveshape_spheroid": 4,
    "primitiveshape_cylinder": 5,
    "primitiveshape_capsule": 7,
    "shapeintparam_static": 3003,
    "shapeintparam_respondable": 3004,
    "colorcomponent_ambient_diffuse": 0,
}


@dataclass
class FakeObject:
    alias: str
    kind: str  # "shape", "joint", "visionSensor", "dummy"
    pose: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
    parent: str = ""  # alias path of the parent ("" at the scene root)
    size: list[float] = field(default_factory=list)
    primitive: int = 0
    static: int = 0
    respondable: int = 0
    mass: float = 0.0
    color: list[float] = field(default_factory=list)
    position: float = 0.0  # joints
    target: float = 0.0
    velocity: float = 0.0
    max_speed: float = 1.0
    target_force: float = 0.0
    resolution: tuple[int, int] = (0, 0)  # vision sensors

    def path(self) -> str:
        return f"{self.parent}/{self.alias}"


class SimError(Exception):
    """Reported to the client as ``{err: ...}``, as the real server reports a failing API call."""


class FakeScene:
    """The ``sim`` functions the stand-in answers, over a tiny kinematic scene."""

    def __init__(self, scene_files: tuple[str, ...] = ("panda_lab.ttt",), dt: float = 0.01):
        self.scene_files = scene_files
        self.dt = dt
        self.objects: dict[int, FakeObject] = {}
        self.state = SIMULATION_STOPPED
        self.time = 0.0
        self.stepping_level = 0
        self.steps = 0
        self.loaded_scene = ""
        self._next = 1
        self._base_scene()

    def _add(self, obj: FakeObject) -> int:
        h = self._next
        self._next += 1
        self.objects[h] = obj
        return h

    def _base_scene(self) -> None:
        self.objects.clear()
        self._add(FakeObject("panda", "dummy"))
        for name in JOINTS:
            finger = "finger" in name
            self._add(FakeObject(name, "joint", parent="/panda", max_speed=0.1 if finger else 2.0))

    def _obj(self, handle) -> FakeObject:
        if handle not in self.objects:
            raise SimError("Object does not exist.")
        return self.objects[handle]

    def handle_of(self, alias: str) -> int:
        """(For tests) the handle of an object by alias."""
        return next(h for h, o in self.objects.items() if o.alias == alias)

    # ---- scene and simulation
    def loadScene(self, path: str):  # CoppeliaSim's API names from here on
        if path not in self.scene_files:
            raise SimError(f"scene file {path!r} does not exist.")
        self._base_scene()
        self.loaded_scene = path
        self.state, self.time = SIMULATION_STOPPED, 0.0

    def startSimulation(self):
        self.state = SIMULATION_RUNNING
        return 1

    def stopSimulation(self):
        self.state, self.time, self.stepping_level = SIMULATION_STOPPED, 0.0, 0
        return 1

    def getSimulationState(self):
        return self.state

    def getSimulationTime(self):
        return self.time

    def getSimulationTimeStep(self):
        return self.dt

    def setStepping(self, enable: bool):
        previous = self.stepping_level
        self.stepping_level = previous + 1 if enable else max(0, previous - 1)
        return previous

    def advance(self) -> None:
        """One simulation step (``sim.step`` once the client has acknowledged the wait)."""
        if self.state != SIMULATION_RUNNING:
            return
        self.steps += 1
        self.time += self.dt
        for o in self.objects.values():
            if o.kind == "joint":
                delta = float(np.clip(o.target - o.position, -o.max_speed * self.dt, o.max_speed * self.dt))
                o.position += delta
                o.velocity = delta / self.dt

    # ---- objects
    def getObject(self, path: str, options: dict | None = None):
        for h, o in self.objects.items():
            if o.path() == path:
                return h
        raise SimError("Object does not exist.")

    def createPrimitiveShape(self, primitive: int, sizes: list, options: int = 0):
        if primitive not in {CONSTANTS[k] for k in CONSTANTS if k.startswith("primitiveshape_")}:
            raise SimError("Invalid primitive type.")
        if len(sizes) != 3 or min(sizes) <= 0:
            raise SimError("Invalid sizes.")
        return self._add(FakeObject("Shape", "shape", size=[float(s) for s in sizes], primitive=primitive))

    def groupShapes(self, handles: list):
        first = self._obj(handles[0])
        for h in handles[1:]:
            self._obj(h)
            del self.objects[h]
        first.size = []  # a compound shape
        return handles[0]

    def removeObjects(self, handles: list):
        for h in handles:
            self._obj(h)
            del self.objects[h]

    def setObjectAlias(self, handle, alias: str):
        self._obj(handle).alias = alias

    def getObjectAlias(self, handle, options: int = -1):
        return self._obj(handle).alias

    def setObjectPose(self, handle, pose: list, relative_to: int = -1):
        if relative_to != -1:
            raise SimError("the stand-in knows world poses only")
        if len(pose) != 7:
            raise SimError("Invalid pose.")
        self._obj(handle).pose = [float(v) for v in pose]

    def getObjectPose(self, handle, relative_to: int = -1):
        if relative_to != -1:
            raise SimError("the stand-in knows world poses only")
        return list(self._obj(handle).pose)

    def setShapeColor(self, handle, color_name, component: int, rgb: list):
        self._obj(handle).color = [float(c) for c in rgb]

    def setShapeMass(self, handle, mass: float):
        self._obj(handle).mass = float(mass)

    def setObjectInt32Param(self, handle, param: int, value: int):
        obj = self._obj(handle)
        if param == CONSTANTS["shapeintparam_static"]:
            obj.static = int(value)
        elif param == CONSTANTS["shapeintparam_respondable"]:
            obj.respondable = int(value)
        else:
            raise SimError("Invalid parameter.")
        return 1

    # ---- joints
    def _joint(self, handle) -> FakeObject:
        obj = self._obj(handle)
        if obj.kind != "joint":
            raise SimError("Object is not a joint.")
        return obj

    def getJointPosition(self, handle):
        return self._joint(handle).position

    def setJointPosition(self, handle, q: float):
        j = self._joint(handle)
        j.position, j.velocity = float(q), 0.0

    def getJointVelocity(self, handle):
        return self._joint(handle).velocity

    def setJointTargetPosition(self, handle, q: float, motion_params: list | None = None):
        self._joint(handle).target = float(q)

    def getJointTargetPosition(self, handle):
        return self._joint(handle).target

    def setJointTargetForce(self, handle, force: float, signed: bool = True):
        self._joint(handle).target_force = float(force)

    # ---- vision sensors
    def createVisionSensor(self, options: int, int_params: list, float_params: list):
        if len(int_params) != 4 or len(float_params) != 11:
            raise SimError("Invalid arguments.")
        return self._add(
            FakeObject("Vision_sensor", "visionSensor", resolution=(int(int_params[0]), int(int_params[1])))
        )

    def _sensor(self, handle) -> FakeObject:
        obj = self._obj(handle)
        if obj.kind != "visionSensor":
            raise SimError("Object is not a vision sensor.")
        return obj

    def getVisionSensorImg(self, handle, options: int = 0):
        w, h = self._sensor(handle).resolution
        img = np.zeros((h, w, 3), np.uint8)
        img[0] = (255, 0, 0)  # CoppeliaSim's first row is the image's bottom row: mark it red
        return img.tobytes(), [w, h]

    def getVisionSensorDepth(self, handle, options: int = 0):
        w, h = self._sensor(handle).resolution
        depth = np.full((h, w), 1.25, np.float32)
        return depth.tobytes(), [w, h]


class CoppeliaStandIn:
    """A REP socket on 127.0.0.1 serving a ``FakeScene`` in a thread; ``requests`` logs every decoded request."""

    def __init__(self, scene: FakeScene | None = None):
        self.scene = scene or FakeScene()
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._stop = threading.Event()
        self._waiting: dict[str, bool] = {}  # client uuid -> sim.step waiting for _*executed*_
        self._thread = threading.Thread(target=self._serve, name="coppeliasim-standin", daemon=True)

    def __enter__(self) -> CoppeliaStandIn:
        """Bind (a free port, in ``port``) and serve until the ``with`` block ends."""
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self.port = self._socket.bind_to_random_port("tcp://127.0.0.1")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self._socket.close(linger=0)
        self._context.term()

    def _info(self, name: str) -> dict[str, Any]:
        if name != "sim":
            raise SimError(f"unknown namespace {name!r}")
        funcs = [n for n in dir(FakeScene) if n[0].islower() and callable(getattr(FakeScene, n))]
        funcs = [n for n in funcs if n not in ("advance", "handle_of")] + ["step"]
        return {**{n: {"func": {}} for n in funcs}, **{k: {"const": v} for k, v in CONSTANTS.items()}}

    def handle(self, req: Any) -> dict[str, Any]:
        """One reply to one request, as the real server would give it."""
        if not isinstance(req, dict) or "uuid" not in req:
            return {
                "success": False,
                "error": "The client ZeroMQ remote API version does not match CoppeliaSim's version",
            }
        func, args, client = req.get("func"), list(req.get("args") or []), req["uuid"]
        if func == "_*executed*_" and self._waiting.pop(client, False):
            self.scene.advance()
            return {"ret": []}
        if func == "zmqRemoteApi.require":
            return {"ret": []} if args == ["sim"] else {"err": f"module {args[0]!r} not found"}
        if func == "sim.step":
            self._waiting[client] = True
            return {"func": "_*wait*_", "args": []}
        try:
            if func == "zmqRemoteApi.info":
                return {"ret": [self._info(*args)]}
            if not isinstance(func, str) or not func.startswith("sim.") or func[4:] not in self._info("sim"):
                return {"err": f"No such function: {func}"}
            out = getattr(self.scene, func[4:])(*args)
        except SimError as exc:
            return {"err": f"{exc} (in function '{func}')"}
        except TypeError as exc:
            return {"err": f"Wrong arguments: {exc} (in function '{func}')"}
        if out is None:
            return {"ret": []}
        return {"ret": list(out) if isinstance(out, tuple) else [out]}  # several return values, as Lua gives them

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(50, zmq.POLLIN):
                continue
            req = cbor2.loads(self._socket.recv())
            self.requests.append(req)
            self._socket.send(cbor2.dumps(self.handle(req)))
