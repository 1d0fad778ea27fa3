"""``llm-trainer iteach``: interactive imitation learning with a CodePolicy teacher, beside behaviour cloning.

One run, one task (in the simulator, state only):

1. the teacher: the task's CodePolicy (hand-written, or LLM-written by ``iteach.prompting``), in the
   sandbox; a CodePolicy that fails to load is refused with the reason and the hand-written one runs;
2. optional warm start on a few teacher demonstrations;
3. LLM-iTeach episodes on training seeds: the agent proposes, the teacher labels (``feedback``), the
   executed action is the agent's when approved and the teacher's when corrected; after every episode
   the agent trains on the whole buffer with the feedback loss weights;
4. the baseline: behaviour cloning on as many teacher demonstrations (same seeds, same network, same
   number of gradient steps);
5. at every checkpoint both agents, and the teacher itself, run alone on test seeds (never training
   seeds): success rate against training episodes, as a table (``table.md``), a curve (``curves.png``)
   and ``results.json``; the agents are saved.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from llm_trainer.datagen.run_store import seed_for
from llm_trainer.iteach.agent import Agent, AgentConfig, features
from llm_trainer.iteach.codepolicy import CodePolicy, builtin_codepolicy
from llm_trainer.iteach.feedback import CORRECTIVE, EVALUATIVE, feedback_label, loss_weights
from llm_trainer.iteach.sandbox import SandboxError, SandboxLimits
from llm_trainer.iteach.scene_api import scene_view


@dataclass
class ITeachConfig:
    task: str = "put_block"
    episodes: int = 40  # interactive training episodes (and teacher demonstrations for the BC baseline)
    eval_every: int = 10
    eval_episodes: int = 20  # test seeds per checkpoint
    warm_start_demos: int = 0
    threshold_deg: float = 20.0
    turn_tolerance: float = 0.05  # [rad per step] a larger difference of turns is corrected (see feedback)
    evaluative_weight: float = 1.0
    updates_per_episode: int = 150
    max_steps: int = 300
    max_move: float = 0.03
    max_turn: float = 0.25
    seed: int = 0
    agent: AgentConfig = field(default_factory=AgentConfig)
    sandbox: SandboxLimits = field(default_factory=SandboxLimits)

    def validate(self) -> None:
        if self.episodes < 1 or self.eval_every < 1 or self.eval_episodes < 1 or self.warm_start_demos < 0:
            raise ValueError("iteach: episodes, eval_every and eval_episodes >= 1, warm_start_demos >= 0")
        if not 0.0 <= self.threshold_deg <= 180.0:
            raise ValueError(f"iteach: threshold_deg must be within [0, 180], got {self.threshold_deg}")
        if self.evaluative_weight < 0 or self.updates_per_episode < 1 or self.max_steps < 10:
            raise ValueError("iteach: evaluative_weight >= 0, updates_per_episode >= 1, max_steps >= 10")
        if not (0 < self.max_move <= 0.05 and 0 < self.max_turn <= 0.5):
            raise ValueError("iteach: max_move within (0, 0.05] m and max_turn within (0, 0.5] rad")
        self.agent.validate()


@dataclass
class EpisodeResult:
    success: bool
    steps: int
    x: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    teacher_error: str = ""


def test_seeds(config: ITeachConfig) -> list[int]:
    return [seed_for("test", config.seed, j, config.task) for j in range(config.eval_episodes)]


def task_roles(task: str, seed: int = 0) -> int:
    """How many objects the task's goal names (the agent sees them in role order)."""
    from llm_trainer.policies.features import role_names
    from llm_trainer.tasks.registry import get_task

    instance = get_task(task).instance(seed)
    return max(1, len(role_names(instance.goal, [o.name for o in instance.objects])))


def run_episode(sim, config: ITeachConfig, seed: int, mode: str, *, agent: Agent | None = None,
                teacher: CodePolicy | None = None) -> EpisodeResult:  # fmt: skip
    """One episode. ``mode``: teacher (demonstration) | agent (alone, evaluation) | iteach (with feedback)."""
    from llm_trainer.execution.servo import ServoController
    from llm_trainer.tasks.registry import get_task

    instance = sim.reset(get_task(config.task), seed)
    servo = ServoController(sim, max_step=config.max_move, max_turn=config.max_turn)
    if teacher is not None:
        teacher.reset()
    result = EpisodeResult(False, 0)
    closed = False
    for step in range(config.max_steps):
        scene = scene_view(sim, instance, max_move=config.max_move, max_turn=config.max_turn)
        x = features(scene, config.agent.roles)
        t_action = None
        if teacher is not None:
            try:
                t = teacher.act(scene)
            except SandboxError as exc:
                result.teacher_error = f"{exc.kind}: {exc.reason}"
                break
            t_action = t.as_list(closed)
        if mode == "teacher":
            action, label = t_action, CORRECTIVE
        else:
            move, turn, a_closed = agent.act(x)
            action = [*move, turn, 1.0 if a_closed else 0.0]
            label = EVALUATIVE
            if mode == "iteach":
                label = feedback_label(move, t_action[:3], config.threshold_deg, agent_closed=a_closed,
                                       teacher_closed=t_action[4] > 0.5, agent_turn=turn, teacher_turn=t_action[3],
                                       turn_tolerance=config.turn_tolerance)  # fmt: skip
                if label == CORRECTIVE:
                    action = t_action
        if mode != "agent":
            result.x.append(x)
            result.actions.append(action)
            result.labels.append(label)
        closed = action[4] > 0.5
        pos, yaw = servo.hand()
        servo.step(pos + np.asarray(action[:3]), yaw + action[3], closed)
        result.steps = step + 1
        if step % 5 == 4 and sim.check_success().success:
            result.success = True
            return result
        if mode == "teacher" and teacher.finished:
            break
    sim.step_for(0.3)
    result.success = sim.check_success().success
    return result


def evaluate(sim, config: ITeachConfig, *, agent: Agent | None = None, teacher: CodePolicy | None = None,
             errors: list[str] | None = None) -> float:  # fmt: skip
    """Success rate alone on the test seeds (the agent, or else the teacher); teacher errors go to ``errors``."""
    mode = "agent" if agent is not None else "teacher"
    wins = 0
    for s in test_seeds(config):
        r = run_episode(sim, config, s, mode, agent=agent, teacher=teacher)
        wins += r.success
        if r.teacher_error and errors is not None:
            errors.append(f"seed {s}: {r.teacher_error}")
    return wins / config.eval_episodes


def load_teacher(config: ITeachConfig, source: str | None, log) -> tuple[CodePolicy, str]:
    """The CodePolicy to teach with: ``source`` if it passes the sandbox, else the hand-written one."""
    if source is not None:
        try:
            return CodePolicy(source, config.sandbox, name="given"), "given"
        except SandboxError as exc:
            log(f"rejected: {exc.reason} (the hand-written CodePolicy teaches instead)")
    return CodePolicy(builtin_codepolicy(config.task), config.sandbox, name="hand-written"), "hand-written"


def _stack(samples: list[EpisodeResult]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    x = [v for r in samples for v in r.x]
    a = [v for r in samples for v in r.actions]
    lab = [v for r in samples for v in r.labels]
    return np.asarray(x, np.float32), np.asarray(a, np.float32), lab


def iteach(config: ITeachConfig, out: Path | str, *, codepolicy_source: str | None = None, log=print) -> dict:
    import torch

    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig

    config.validate()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # A 256-wide MLP gains nothing from more threads; on a loaded 2-core machine two threads made each
    # update 13x slower (39 ms against 3 ms, measured).
    torch.set_num_threads(1)
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    teacher, teacher_kind = load_teacher(config, codepolicy_source, log)
    try:
        config.agent.roles = task_roles(config.task, config.seed)
        inputs = 6 + 5 * config.agent.roles  # policies.features.state_features

        def new_agent() -> Agent:
            return Agent(inputs, config.agent, max_move=config.max_move, max_turn=config.max_turn, seed=config.seed)

        train_seeds = [seed_for("train", config.seed, i, config.task) for i in range(config.episodes)]
        warm = range(config.episodes, config.episodes + config.warm_start_demos)
        warm_seeds = [seed_for("train", config.seed, i, config.task) for i in warm]
        checkpoints = sorted({*range(config.eval_every, config.episodes + 1, config.eval_every), config.episodes})
        rows: list[dict] = []
        stats = {"corrective": 0, "evaluative": 0, "train_successes": 0, "teacher_errors": []}
        teacher_rate = evaluate(sim, config, teacher=teacher, errors=stats["teacher_errors"])
        if stats["teacher_errors"] and teacher_kind != "hand-written":
            log(f"rejected: {stats['teacher_errors'][0]} (the hand-written CodePolicy teaches instead)")
            teacher.close()
            teacher, teacher_kind = load_teacher(config, None, log)
            teacher_rate = evaluate(sim, config, teacher=teacher, errors=stats["teacher_errors"])
        log(f"teacher ({teacher_kind} CodePolicy) alone on {config.eval_episodes} test seeds: {teacher_rate:.0%}")

        # LLM-iTeach
        agent = new_agent()
        buffer = [run_episode(sim, config, s, "teacher", teacher=teacher) for s in warm_seeds]
        if buffer:
            x, a, lab = _stack(buffer)
            agent.fit(x, a, loss_weights(lab, config.evaluative_weight), config.updates_per_episode * len(buffer))
        curve_iteach: dict[int, float] = {}
        for i, seed in enumerate(train_seeds, 1):
            r = run_episode(sim, config, seed, "iteach", agent=agent, teacher=teacher)
            if r.teacher_error:
                stats["teacher_errors"].append(f"seed {seed}: {r.teacher_error}")
                teacher.close()
                teacher, teacher_kind = load_teacher(config, None, log)  # the run goes on
            buffer.append(r)
            stats["corrective"] += r.labels.count(CORRECTIVE)
            stats["evaluative"] += r.labels.count(EVALUATIVE)
            stats["train_successes"] += r.success
            x, a, lab = _stack(buffer)
            agent.fit(x, a, loss_weights(lab, config.evaluative_weight), config.updates_per_episode)
            if i in checkpoints:
                curve_iteach[i] = evaluate(sim, config, agent=agent)
                n = stats["corrective"] + stats["evaluative"]
                log(f"iteach  {i:4d} episodes: test success {curve_iteach[i]:.0%} "
                    f"(corrective {stats['corrective'] / max(n, 1):.0%} of {n} steps so far)")  # fmt: skip
        agent.save(out / "iteach_agent.pt")

        # Behaviour cloning on as many teacher demonstrations, same network and gradient steps.
        demos = [run_episode(sim, config, s, "teacher", teacher=teacher) for s in warm_seeds + train_seeds]
        curve_bc: dict[int, float] = {}
        for n in checkpoints:
            bc = new_agent()
            x, a, _lab = _stack(demos[: config.warm_start_demos + n])
            bc.fit(x, a, np.ones(len(x), np.float32), config.updates_per_episode * (config.warm_start_demos + n))
            curve_bc[n] = evaluate(sim, config, agent=bc)
            log(f"bc      {n:4d} demos:    test success {curve_bc[n]:.0%}")
        bc.save(out / "bc_agent.pt")
        for n in checkpoints:
            rows.append({"episodes": n, "iteach": curve_iteach[n], "bc": curve_bc[n]})
        summary = {
            "task": config.task,
            "teacher": teacher_kind,
            "teacher_success": teacher_rate,
            "demo_successes": sum(d.success for d in demos),
            "rows": rows,
            "feedback": {k: v for k, v in stats.items()},
            "train_seeds": [train_seeds[0], train_seeds[-1]],
            "test_seeds": [test_seeds(config)[0], test_seeds(config)[-1]],
            "config": asdict(config),
            "wall_time_s": round(time.perf_counter() - t0, 1),
        }
    finally:
        teacher.close()
        sim.close()
    (out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "table.md").write_text(markdown_table([summary]))
    plot_curves([summary], out / "curves.png")
    return summary


def markdown_table(summaries: list[dict]) -> str:
    lines = ["| task | training episodes | LLM-iTeach | BC (same # teacher demos) | teacher alone |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for s in summaries:
        for row in s["rows"]:
            lines.append(f"| {s['task']} | {row['episodes']} | {row['iteach']:.0%} | {row['bc']:.0%} | "
                         f"{s['teacher_success']:.0%} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_curves(summaries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summaries), figsize=(4.5 * len(summaries), 3.4), squeeze=False)
    for ax, s in zip(axes[0], summaries):
        n = [r["episodes"] for r in s["rows"]]
        ax.plot(n, [100 * r["iteach"] for r in s["rows"]], "o-", label="LLM-iTeach")
        ax.plot(n, [100 * r["bc"] for r in s["rows"]], "s--", label="BC")
        ax.axhline(100 * s["teacher_success"], color="grey", lw=0.8, ls=":", label="teacher alone")
        ax.set(title=s["task"], xlabel="training episodes", ylabel="test success (%)", ylim=(-5, 105))
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_iteach_config(path=None) -> ITeachConfig:
    from llm_trainer.config import config_dir, load_section

    return load_section(ITeachConfig, path or config_dir() / "iteach.yaml", "iteach")
