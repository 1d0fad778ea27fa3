"""The simulator's publishing grid: streams stay on whole physics steps of their period, even though
simulated time and the grid are both running sums of floats."""

import mujoco
import numpy as np

from llm_trainer.sim.topics import advance, is_due


def _published_steps(rate_hz: float, seconds: float) -> np.ndarray:
    # MuJoCo's own clock: data.time grows by the timestep each mj_step, with its rounding error
    model = mujoco.MjModel.from_xml_string('<mujoco><option timestep="0.002"/><worldbody/></mujoco>')
    data = mujoco.MjData(model)
    due = {"s": 0.0}
    steps = []
    for k in range(int(round(seconds / 0.002))):
        mujoco.mj_step(model, data)
        if is_due(due, "s", data.time):
            advance(due, "s", data.time, rate_hz)
            steps.append(k)
    return np.asarray(steps)


def test_a_50_hz_stream_publishes_every_tenth_step_for_minutes_of_simulated_time():
    gaps = np.diff(_published_steps(50.0, 300.0))[1:]  # the first sample goes out at the first step
    # a step landing 1e-15 s short of the grid once made one gap 11 steps (22 ms) and shifted the stream
    assert set(gaps.tolist()) == {10}


def test_a_period_that_is_not_whole_steps_keeps_its_mean_rate():
    steps = _published_steps(15.0, 60.0)
    gaps = np.diff(steps)[1:]
    assert set(gaps.tolist()) <= {33, 34}
    assert abs(len(steps) / 60.0 - 15.0) < 0.05
