"""Teleoperation devices: each turns what a person does into a velocity command for the servo interface.

``TeleopCommand`` is a hand velocity (m/s in the world frame, yaw rate rad/s), a gripper command
(``open``/``close``/None: unchanged) and whether the person is done (``finish``: keep the demo,
``discard``: throw it away). Backends:

- ``keyboard``: the terminal, no window needed (works over ssh): w/s x, a/d y, r/f z, q/e yaw,
  space toggles the gripper, Enter finishes, Backspace or x discards. Each key press moves one
  servo step (the terminal's key repeat gives continuous motion).
- ``spacemouse``: a 3Dconnexion SpaceMouse through ``pyspacemouse`` (HID; ``pip install pyspacemouse``
  and read access to the device): translation and twist proportional to the puck, the left button
  toggles the gripper, the right button finishes.
- ``script:FILE``: a JSON-lines file of commands (``{"v": [x, y, z], "yaw_rate": r, "gripper": "close",
  "steps": n}``), for reproducible demos and the tests.
"""

from __future__ import annotations

import json
import os
import select
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class TeleopCommand:
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))  # [m/s] world frame
    yaw_rate: float = 0.0  # [rad/s]
    gripper: str | None = None  # open | close | None
    finish: bool = False
    discard: bool = False


class TeleopDevice(ABC):
    name = "device"

    @abstractmethod
    def read(self) -> TeleopCommand: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> TeleopDevice:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ScriptDevice(TeleopDevice):
    name = "script"

    def __init__(self, path: Path | str):
        self.commands: list[TeleopCommand] = []
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                velocity = np.asarray(d.get("v", [0, 0, 0]), float)
                cmd = TeleopCommand(velocity, float(d.get("yaw_rate", 0.0)), d.get("gripper"),
                                    bool(d.get("finish", False)), bool(d.get("discard", False)))  # fmt: skip
                steps = int(d.get("steps", 1))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{n}: not a teleop command ({exc})") from None
            if cmd.velocity.shape != (3,) or not np.all(np.isfinite(cmd.velocity)) or steps < 1:
                raise ValueError(f"{path}:{n}: v must be three finite numbers and steps >= 1")
            if cmd.gripper not in (None, "open", "close"):
                raise ValueError(f"{path}:{n}: gripper must be open or close")
            self.commands += [cmd] + [TeleopCommand(cmd.velocity, cmd.yaw_rate) for _ in range(steps - 1)]

    def read(self) -> TeleopCommand:
        return self.commands.pop(0) if self.commands else TeleopCommand(finish=True)


class KeyboardDevice(TeleopDevice):
    name = "keyboard"
    KEYS = {"w": (0, 1), "s": (0, -1), "a": (1, 1), "d": (1, -1), "r": (2, 1), "f": (2, -1)}

    def __init__(self, speed: float = 0.1, yaw_speed: float = 0.8, stream=None):
        import termios
        import tty

        self.stream = stream or sys.stdin
        if not self.stream.isatty():
            raise ValueError("the keyboard device needs a terminal (use --device script:FILE otherwise)")
        self.fd = self.stream.fileno()
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        self.speed, self.yaw_speed = speed, yaw_speed
        self.closed = False
        print("keys: w/s x, a/d y, r/f z, q/e turn, space gripper, Enter finish, x discard", file=sys.stderr)

    def read(self) -> TeleopCommand:
        cmd = TeleopCommand()
        while select.select([self.fd], [], [], 0)[0]:
            key = os.read(self.fd, 1).decode(errors="ignore")
            if key in self.KEYS:
                axis, sign = self.KEYS[key]
                cmd.velocity[axis] = sign * self.speed
            elif key in ("q", "e"):
                cmd.yaw_rate = self.yaw_speed * (1 if key == "q" else -1)
            elif key == " ":
                self.closed = not self.closed
                cmd.gripper = "close" if self.closed else "open"
            elif key in ("\n", "\r"):
                cmd.finish = True
            elif key in ("x", "\x7f"):
                cmd.discard = True
        return cmd

    def close(self) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


class SpaceMouseDevice(TeleopDevice):
    name = "spacemouse"

    def __init__(self, speed: float = 0.15, yaw_speed: float = 1.0, deadband: float = 0.08):
        try:
            import pyspacemouse
        except ImportError:
            raise ValueError("the spacemouse device needs pyspacemouse: pip install pyspacemouse") from None
        self.mouse = pyspacemouse
        if not pyspacemouse.open():
            raise ValueError("no SpaceMouse found (is it plugged in, and may this user read /dev/hidraw*?)")
        self.speed, self.yaw_speed, self.deadband = speed, yaw_speed, deadband
        self.closed = False
        self._buttons = (0, 0)

    def read(self) -> TeleopCommand:
        state = self.mouse.read()

        def axis(v: float) -> float:
            return 0.0 if abs(v) < self.deadband else float(v)

        cmd = TeleopCommand(np.array([axis(state.y), -axis(state.x), axis(state.z)]) * self.speed,
                            axis(state.yaw) * self.yaw_speed)  # fmt: skip
        buttons = tuple(state.buttons[:2]) if len(state.buttons) >= 2 else (0, 0)
        if buttons[0] and not self._buttons[0]:
            self.closed = not self.closed
            cmd.gripper = "close" if self.closed else "open"
        if buttons[1] and not self._buttons[1]:
            cmd.finish = True
        self._buttons = buttons
        return cmd

    def close(self) -> None:
        self.mouse.close()


def make_device(spec: str) -> TeleopDevice:
    if spec == "keyboard":
        return KeyboardDevice()
    if spec == "spacemouse":
        return SpaceMouseDevice()
    if spec.startswith("script:"):
        return ScriptDevice(spec.split(":", 1)[1])
    raise ValueError(f"unknown teleop device {spec!r} (keyboard, spacemouse, script:FILE)")
