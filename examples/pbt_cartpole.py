"""Population based training of a policy-gradient agent on CartPole, reported on test seeds (a few minutes on 2 CPU cores).

    pip install -e '.[rl]'          # torch and gymnasium
    python examples/pbt_cartpole.py

The agent is REINFORCE with a learned baseline (two small MLPs, policy and value, one Adam optimizer) on
gymnasium's ``CartPole-v1``. One *step* is one training iteration: a batch of ``EPISODES`` episodes played
with the current policy, then one gradient step. Every step reports the batch's mean return (maximized); the
trial's final value is the policy's mean return on ``EVAL_EPISODES`` fresh episodes (no update; actions
sampled as in training: a greedy argmax policy from a barely trained net can already balance the pole).

PBT trains a population of ``POPULATION`` agents for ``STEPS`` iterations; every ``INTERVAL`` iterations the
bottom quarter copy the weights of a top-quarter member and perturb its learning rate, entropy bonus and
discount. The same initial configurations, trained on the same seeds without PBT (a random search at equal
compute), give the *best fixed configuration*. Both winners are then re-run on **test seeds** that no tuning
run saw (``selftune.protocol.evaluate``; PBT's winner replays its schedule) and reported as mean ± 95% CI.

Randomness comes only from ``trial.seed``: it seeds the network's initialisation, and each iteration's
environment resets and action sampling are seeded from ``(trial.seed, step)``, so pausing and resuming from a
checkpoint changes nothing, and a run is reproducible. The environment variables ``SELFTUNE_EXAMPLE_*``
below shrink the run (the tests use them).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import time  # noqa: E402
from typing import Any  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import selftune  # noqa: E402

POPULATION = int(os.environ.get("SELFTUNE_EXAMPLE_POPULATION", "8"))
STEPS = int(os.environ.get("SELFTUNE_EXAMPLE_STEPS", "30"))
INTERVAL = int(os.environ.get("SELFTUNE_EXAMPLE_INTERVAL", "5"))
EPISODES = int(os.environ.get("SELFTUNE_EXAMPLE_EPISODES", "16"))
EVAL_EPISODES = int(os.environ.get("SELFTUNE_EXAMPLE_EVAL_EPISODES", "16"))
TEST_SEEDS = int(os.environ.get("SELFTUNE_EXAMPLE_TEST_SEEDS", "5"))
HIDDEN = 64
MUTABLE = ["lr", "entropy", "gamma"]  # what PBT may change while training


class Agent(torch.nn.Module):
    """A policy MLP (4 -> 64 -> 64 -> 2 logits) and a value MLP (4 -> 64 -> 64 -> 1) as the baseline."""

    def __init__(self, hidden: int = HIDDEN) -> None:
        super().__init__()

        def mlp(out: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(
                torch.nn.Linear(4, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, hidden), torch.nn.Tanh(),
                torch.nn.Linear(hidden, out),
            )

        self.policy = mlp(2)
        self.value = mlp(1)


def _seed(*key: int) -> int:
    """A 32-bit seed derived from the integers in ``key`` (independent streams for different keys)."""
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])


def play(agent: Agent, episodes: int, seed: int) -> dict[str, Any]:
    """Play ``episodes`` CartPole episodes side by side (gymnasium's vectorized CartPole), seeded by ``seed``.

    Returns the observations, actions, rewards and alive masks as (time, episode) tensors and each episode's
    return. Actions are sampled from the policy with a generator seeded from ``seed``.
    """
    env = gym.make_vec("CartPole-v1", num_envs=episodes, vectorization_mode="vector_entry_point")
    generator = torch.Generator().manual_seed(_seed(seed, 1))
    obs, _ = env.reset(seed=_seed(seed, 0) % 2**31)
    alive = np.ones(episodes, dtype=bool)
    observations, actions, rewards, masks = [], [], [], []
    with torch.no_grad():
        while alive.any():
            x = torch.as_tensor(obs, dtype=torch.float32)
            logits = agent.policy(x)
            action = torch.multinomial(torch.softmax(logits, 1), 1, generator=generator).squeeze(1)
            observations.append(x)
            actions.append(action)
            masks.append(torch.as_tensor(alive, dtype=torch.float32))
            obs, reward, terminated, truncated, _ = env.step(action.numpy())
            rewards.append(torch.as_tensor(reward * alive, dtype=torch.float32))
            alive &= ~(terminated | truncated)  # steps after an episode's end are masked out
    env.close()
    r = torch.stack(rewards)
    return {"obs": torch.stack(observations), "actions": torch.stack(actions), "rewards": r,
            "masks": torch.stack(masks), "returns": r.sum(0)}


def update(agent: Agent, optimizer: torch.optim.Optimizer, batch: dict[str, Any], entropy: float,
           gamma: float) -> None:
    """One REINFORCE-with-baseline gradient step on a batch of whole episodes."""
    rewards, masks = batch["rewards"], batch["masks"]
    togo = torch.zeros_like(rewards)  # discounted returns to go (0 after an episode's end)
    running = torch.zeros(rewards.shape[1])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * running
        togo[t] = running
    n = masks.sum()
    logits = agent.policy(batch["obs"])
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, batch["actions"].unsqueeze(-1)).squeeze(-1)
    ent = -(logp_all.exp() * logp_all).sum(-1)
    value = agent.value(batch["obs"]).squeeze(-1)
    advantage = (togo - value).detach()
    mean = (advantage * masks).sum() / n
    std = (((advantage - mean) ** 2 * masks).sum() / n).sqrt()
    advantage = (advantage - mean) / (std + 1e-8)
    loss = (-(logp * advantage) - entropy * ent + 0.5 * (togo - value) ** 2) * masks
    optimizer.zero_grad()
    (loss.sum() / n).backward()
    torch.nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
    optimizer.step()


def objective(trial: selftune.Trial) -> float:
    """Train for ``STEPS`` iterations (pausable: PBT pauses it every ``INTERVAL``); return the final policy's
    mean return on fresh episodes."""
    # read afresh each time the objective starts: an exploit changes them
    lr = trial.float("lr", 1e-4, 3e-2, log=True)
    entropy = trial.float("entropy", 1e-4, 1e-1, log=True)
    gamma = trial.float("gamma", 0.9, 0.999)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trial.seed)
        agent = Agent()
        optimizer = torch.optim.Adam(agent.parameters(), lr=lr)
        start = 1
        state = trial.load_checkpoint()  # None on a fresh start; another member's weights after an exploit
        if state is not None:
            agent.load_state_dict(state["agent"])
            optimizer.load_state_dict(state["optimizer"])
            start = trial.resume_step + 1
        for group in optimizer.param_groups:
            group["lr"] = lr
        for step in range(start, STEPS + 1):
            batch = play(agent, EPISODES, _seed(trial.seed, step))
            update(agent, optimizer, batch, entropy, gamma)
            trial.report(float(batch["returns"].mean()), step)
            if trial.should_stop():
                trial.save_checkpoint({"agent": agent.state_dict(), "optimizer": optimizer.state_dict()}, step=step)
                raise selftune.StopTrial()
        final = play(agent, EVAL_EPISODES, _seed(trial.seed, 0, 1))  # episodes no update saw
    return float(final["returns"].mean())


def describe(params: dict[str, Any]) -> str:
    return f"lr={params['lr']:.2e} entropy={params['entropy']:.2e} gamma={params['gamma']:.4f}"


def ancestry(study: selftune.Study, record: selftune.TrialRecord) -> list[tuple[int, int, int]]:
    """Where ``record``'s final weights come from, oldest first: ``(trial, first_step, last_step)`` for each
    member that trained them (each exploit took a checkpoint of another member at some step)."""
    members = {r.number: r for r in study.trials}
    chain, number, until = [], record.number, STEPS + 1
    while True:
        earlier = [e for e in members[number].lineage if e.step < until and e.source != number]
        first = earlier[-1].source_step + 1 if earlier else 1
        chain.append((number, first, until - 1))
        if not earlier:
            return chain[::-1]
        number, until = earlier[-1].source, earlier[-1].source_step + 1


def print_schedule(study: selftune.Study, record: selftune.TrialRecord) -> None:
    """The hyperparameters its final weights were trained with, where those weights come from, its exploits."""
    segments = list(record.schedule)
    print(f"schedule of trial {record.number}'s final weights ({len(segments)} segment{'s' * (len(segments) != 1)}, "
          "inherited ones included):")
    for i, (first, params) in enumerate(segments):
        last = segments[i + 1][0] - 1 if i + 1 < len(segments) else STEPS
        print(f"  steps {max(first, 1):>3}-{last:<3} {describe(params)}")
    print("trained by: " + ", then ".join(f"trial {n} steps {a}-{b}" for n, a, b in ancestry(study, record)))
    lineage = record.lineage
    print(f"lineage of trial {record.number} ({len(lineage)} exploit{'s' * (len(lineage) != 1)}):")
    for e in lineage:
        print(f"  at step {e.step}: copied trial {e.source}'s weights of step {e.source_step}, "
              f"went on with {describe(dict(e.params))}")
    if not lineage:
        print("  (never exploited: it trained its own weights throughout)")


def main() -> None:
    torch.set_num_threads(1)
    began = time.perf_counter()
    pbt = selftune.create_study(
        "cartpole-pbt", storage="memory", direction="maximize", sampler=selftune.RandomSampler(seed=0),
        scheduler=selftune.PopulationBasedTraining(POPULATION, INTERVAL, MUTABLE, max_step=STEPS, seed=0),
    )
    pbt.optimize(objective, trials=POPULATION, progress=False)
    exploits = sum(len(r.lineage) for r in pbt.trials)
    print(f"PBT: {POPULATION} members x {STEPS} iterations x {EPISODES} episodes, {exploits} exploits "
          f"({time.perf_counter() - began:.0f} s)")
    best = pbt.best
    print(f"best member: trial {best.number}, final return {best.value:.1f} on its tuning seed {best.seed}")
    print_schedule(pbt, best)

    # the same initial configurations and seeds, trained without PBT: a random search at equal compute
    began = time.perf_counter()
    fixed = selftune.create_study("cartpole-fixed", storage="memory", direction="maximize",
                                  sampler=selftune.RandomSampler(seed=0))
    fixed.optimize(objective, trials=POPULATION, progress=False)
    print(f"fixed: the same {POPULATION} initial configurations without PBT; best trial {fixed.best.number}, "
          f"final return {fixed.best.value:.1f} ({describe(fixed.best.params)}) "
          f"({time.perf_counter() - began:.0f} s)")

    # the honest comparison: fresh runs on test seeds no tuning run used
    began = time.perf_counter()
    (pbt_test,) = selftune.protocol.evaluate(objective, pbt, seeds=TEST_SEEDS, direction="maximize")
    (fixed_test,) = selftune.protocol.evaluate(objective, fixed, seeds=TEST_SEEDS, direction="maximize")
    print(f"test seeds {list(pbt_test.seeds)} ({time.perf_counter() - began:.0f} s):")
    print(f"  PBT schedule     {pbt_test}")
    print(f"  fixed (no PBT)   {fixed_test}")
    print(f"  difference in mean return (PBT - fixed): {pbt_test.mean - fixed_test.mean:+.1f}")
    (lo1, hi1), (lo2, hi2) = pbt_test.interval, fixed_test.interval
    overlap = lo1 <= hi2 and lo2 <= hi1
    print(f"  the 95% intervals {'overlap: not a significant difference' if overlap else 'do not overlap'} "
          f"at {len(pbt_test.seeds)} test seeds")


if __name__ == "__main__":
    main()
