"""The standard tasks: ChannelPrune-v0 scenarios fixed once, registered as versioned Gymnasium ids.

A task fixes what a comparison of searchers needs fixed: the network (the trained weights that
ship with prune-gym), its data set and splits, p and the env's default options. Its id says
them, `ChannelPrune-ResNet20-FashionMNIST-p0.2-v0`; a change that alters a task's episodes gets
a new version. The tasks are the league's scenarios, on which the searches behind
benchmarks/RESULTS.md ran and which the history library holds (`prune_gym.league` reads them):

    env = gym.make("ChannelPrune-ResNet20-FashionMNIST-p0.2-v0", device="cpu")

Options that leave the episodes alone (`device`, `batch_size`) may be given; those that make
another task (the network, the data, p, the units, the budget, the reward) are refused.

Each task has a surrogate twin, `ChannelPrune-ResNet20-FashionMNIST-p0.2-surrogate-v0`, whose
reward a model fitted on the committed trials predicts (`prune_gym.surrogate`): the same
episodes in microseconds, for agent research. `gym.make_vec(id, num_envs=N)` plays N of them
in one numpy batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register, registry

from prune_gym.errors import PruneGymError, UnknownNameError

if TYPE_CHECKING:  # the env imports torch; registering a task must not
    from prune_gym.env import ChannelPruneEnv
    from prune_gym.surrogate.env import SurrogatePruneEnv, SurrogatePruneVectorEnv

TITLES = {"resnet20": "ResNet20", "resnet56": "ResNet56", "mobilenet_v1": "MobileNetV1", "fashion-mnist": "FashionMNIST"}
OPTIONS = ("device", "batch_size")  # env options a task leaves free: they change where and how fast, not what


@dataclass(frozen=True)
class Task:
    """:param model: the zoo network, pruned from the checkpoint that ships for it
    :param dataset: its data set (fixed calibration, reward and test splits)
    :param ratio: p, the fraction of the unpruned MACs a policy may keep
    :param version: bumped when the task's episodes change
    """

    model: str
    dataset: str
    ratio: float
    version: int = 0

    @property
    def env_id(self) -> str:
        return f"ChannelPrune-{TITLES[self.model]}-{TITLES[self.dataset]}-p{self.ratio:g}-v{self.version}"

    @property
    def surrogate_id(self) -> str:
        """The id of the task's surrogate twin."""
        return self.env_id.replace(f"-v{self.version}", f"-surrogate-v{self.version}")

    @property
    def label(self) -> str:
        return f"{self.model} on {self.dataset} at p = {self.ratio:g}"

    def env_kwargs(self) -> dict[str, Any]:
        """ChannelPrune-v0's arguments for the task: the network, its data set, p and the shipped weights."""
        from prune_gym.pretrain import shipped_checkpoint

        checkpoint = shipped_checkpoint(self.model, self.dataset)
        if checkpoint is None:
            raise PruneGymError(f"the {self.model} checkpoint of task {self.env_id} is missing from this install "
                                f"of prune-gym; reinstall it")
        return {"model": self.model, "dataset": self.dataset, "target_ratio": self.ratio, "checkpoint": checkpoint}


TASKS = {task.env_id: task for task in (
    Task("resnet20", "fashion-mnist", 0.3),
    Task("resnet20", "fashion-mnist", 0.2),  # informative: searchers end over a point apart
    Task("mobilenet_v1", "fashion-mnist", 0.3),  # informative
    Task("resnet56", "fashion-mnist", 0.2),
)}


def task(env_id: str) -> Task:
    """The task registered as `env_id`, or an error naming the ones that are."""
    if env_id not in TASKS:
        raise UnknownNameError("task", env_id, list(TASKS))
    return TASKS[env_id]


def make_task_env(task_id: str, **options: Any) -> ChannelPruneEnv:
    """The env of a task (the registered ids' entry point); `options` only among `OPTIONS`."""
    from prune_gym.env import ChannelPruneEnv

    fixed = sorted(set(options) - set(OPTIONS))
    if fixed:
        raise PruneGymError(f"task {task_id} fixes {', '.join(fixed)}; only {', '.join(OPTIONS)} may be given (for "
                            f"another scenario, make ChannelPrune-v0)")
    return ChannelPruneEnv(**task(task_id).env_kwargs(), **options)


SURROGATES = {t.surrogate_id: t for t in TASKS.values()}


def make_surrogate_env(task_id: str, **options: Any) -> SurrogatePruneEnv:
    """The surrogate twin of a task (the registered surrogate ids' entry point); it takes no option."""
    from prune_gym.surrogate.env import SurrogatePruneEnv

    _refuse_options(task_id, options)
    t = SURROGATES[task_id]
    return SurrogatePruneEnv(t.model, t.dataset, t.ratio)


def make_surrogate_vector_env(task_id: str, num_envs: int = 1, **options: Any) -> SurrogatePruneVectorEnv:
    """`num_envs` episodes of a surrogate task in one numpy batch (`gym.make_vec`'s entry point)."""
    from prune_gym.surrogate.env import SurrogatePruneVectorEnv

    _refuse_options(task_id, options, "num_envs")
    t = SURROGATES[task_id]
    return SurrogatePruneVectorEnv(t.model, t.dataset, t.ratio, num_envs)


def _refuse_options(task_id: str, options: dict[str, Any], allowed: str = "no option") -> None:
    if options:
        raise PruneGymError(f"surrogate task {task_id} takes {allowed}; got {', '.join(sorted(options))} (it runs "
                            f"in numpy, on the CPU)")


def register_tasks() -> None:
    """Register every task's id, and its surrogate twin's, with Gymnasium (once)."""
    for env_id in TASKS:
        if env_id not in registry:
            register(id=env_id, entry_point="prune_gym.tasks:make_task_env", kwargs={"task_id": env_id})
    for env_id in SURROGATES:
        if env_id not in registry:
            register(id=env_id, entry_point="prune_gym.tasks:make_surrogate_env",
                     vector_entry_point="prune_gym.tasks:make_surrogate_vector_env", kwargs={"task_id": env_id})
