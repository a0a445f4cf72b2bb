"""DAgger for an imitator of a learner: its own rollouts, labelled by a learner that learned from them.

A next-action imitator of a DQN's history is trained on contexts the DQN made. Acting, it reads contexts
its own actions made, and it reads every action in them as evidence about a learner (the auto-suggestive
delusion of sequence models that act; Ortega et al. 2021, arXiv 2110.10819): its uncertainty, once
sampled, reads as a learner that knows less. DAgger's remedy (Ross et al. 2011) needs an expert to
query on the imitator's own states; here the expert is the learner itself: a fresh DQN of the teachers'
config follows each rollout's transitions (`dqn.make_teacher(...).follow`), and its greedy choice at
every step, the action a DQN with exactly that experience would take when not exploring, is that step's
label. Trained on its data and on those labelled rollouts, the imitator is taught what a learner would
do after the experience its own actions made, so those actions are evidence of the right kind.

`labels_of` gives recorded rollouts their learner's labels and `flat` turns them into training data;
`grouped_data` builds the training data of models that each draw from several parts (a replicate's data,
its labelled rollouts).
`experiments/dagger.py` runs the rounds and scores them by the competence gate.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from cl_limits.histories import datasets, windows
from cl_limits.histories.history import History
from cl_limits.teachers.dqn import Transitions


def labels_of(follow, num_envs: int, keys, tasks, transitions: History, next_obs) -> np.ndarray:
  """Labels [S, K, R, T] of recorded rollouts [S, K, R, T] (S replicates, K tasks, R rollouts of each, T
  steps; `RolloutResult` with record=True): at every step the greedy action of a fresh DQN (`follow`,
  keys [S, K, R // num_envs]) that has learned from its group of `num_envs` rollouts (its streams, in
  lockstep) up to that step."""
  s, k, r, t = np.shape(transitions.action)
  if r % int(num_envs):
    raise ValueError(f"rollouts per task: {r} is not a multiple of the teachers' num_envs={num_envs}; "
                     "each DQN follows num_envs rollouts as its streams")
  group = lambda x: jnp.asarray(x).reshape((s, k, r // num_envs, num_envs) + np.shape(x)[3:])
  stream = Transitions(obs=group(transitions.obs), action=group(transitions.action),
                       reward=group(transitions.reward), terminated=group(transitions.terminated),
                       next_obs=group(next_obs))
  per_task = jax.vmap(jax.vmap(follow, in_axes=(0, None, 0)), in_axes=(0, 0, 0))
  labels = jax.jit(jax.vmap(per_task, in_axes=(0, None, 0)))(keys, tasks, stream)
  return np.asarray(labels).reshape(s, k, r, t).astype(np.int32)


def flat(transitions: History, labels) -> datasets.FlatData:
  """One replicate's recorded rollouts [1, K, R, T] as training data: every step, labelled by `labels`.
  The steps keep the rollout's own record (`greedy`: the imitator's choice, `epsilon`: its rate), so a
  model that reads exploration marks sees them as it did when acting (action != its own choice)."""
  return datasets.select(transitions, label=np.asarray(labels))


def grouped_data(parts: list[datasets.FlatData], groups: list[list[int]], seq_len: int):
  """(DeviceData, starts [G, max_n], n_starts [G]): every part once, and model group g drawing its
  windows uniformly from the legal starts of parts `groups[g]` (so a part's share of g's windows is its
  share of g's steps)."""
  offsets = np.concatenate([[0], np.cumsum([p.num_steps for p in parts])])
  starts = [np.asarray(windows.build_index(p.lengths, seq_len).starts) + offsets[i] for i, p in enumerate(parts)]
  per_group = [np.concatenate([starts[i] for i in g]) for g in groups]
  padded, n = windows.pad_starts(per_group)
  data, _ = datasets.concat(parts)
  return datasets.to_device(data), padded, n


def label_agreement(choice, labels) -> np.ndarray:
  """[S] the share of each replicate's rollout steps [S, ...] where the imitator's own choice (the
  recorded rollout's `greedy`, before relabelling) equals the following DQN's label: how often, on its own
  rollouts, it would have chosen as a learner with their experience does."""
  choice, labels = np.asarray(choice), np.asarray(labels)
  return (choice == labels).reshape(choice.shape[0], -1).mean(-1)
