"""The KV-cached decode equals a full causal pass over the same window, before and after it slides."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cl_limits.models.transformer import Tokens, TransitionTransformer

C = 8       # context_len
T = 21      # steps decoded: the window slides past C twice


def random_tokens(key, n, obs_nvec):
  ko, ka, kr, kd = jax.random.split(key, 4)
  if obs_nvec is None:
    obs = jax.random.bernoulli(ko, 0.3, (n, 3, 3, 2))
  else:
    obs = jnp.stack([jax.random.randint(jax.random.fold_in(ko, i), (n,), 0, m)
                     for i, m in enumerate(obs_nvec)], -1).astype(jnp.int8)
  return Tokens(obs=obs, prev_action=jax.random.randint(ka, (n,), 0, 6),
                prev_reward=jax.random.normal(kr, (n,)), prev_done=jax.random.bernoulli(kd, 0.2, (n,)))


def build(obs_nvec, layers, tokens="step", context_len=C):
  model = TransitionTransformer(num_actions=5, context_len=context_len, layers=layers, width=16, heads=4,
                                obs_nvec=obs_nvec, tokens=tokens)
  tokens = random_tokens(jax.random.key(1), T, obs_nvec)
  params = model.init(jax.random.key(0), jax.tree.map(lambda x: x[:C], tokens))
  return model, params, tokens


@pytest.fixture(scope="module", params=[((9, 9), "step"), (None, "step"), ((9, 9), "transition"),
                                        (None, "transition")],
                ids=["grid", "image", "grid-transition", "image-transition"])
def model_and_params(request):
  return build(request.param[0], layers=2, tokens=request.param[1])


def decode_all(model, params, tokens):
  def step(cache, tok):
    logits, cache = model.apply(params, tok, cache, method=TransitionTransformer.decode)
    return cache, logits
  cache, logits = jax.lax.scan(step, model.init_cache(), tokens)
  return logits, cache


def test_decode_matches_full_pass_before_the_window_slides(model_and_params):
  model, params, tokens = model_and_params
  decoded, cache = jax.jit(lambda p, t: decode_all(model, p, t))(params, tokens)
  assert int(cache.pos) == T
  for t in range(C):
    full = model.apply(params, jax.tree.map(lambda x: x[:t + 1], tokens))[-1]
    np.testing.assert_allclose(decoded[t], full, rtol=2e-4, atol=2e-5, err_msg=f"step {t}")


def test_one_layer_decode_matches_full_pass_over_the_last_window_after_sliding():
  """With one layer a token sees exactly the last C transitions, cached or recomputed. (With more
  layers each layer attends C back, so the receptive field reaches L * (C - 1) back: see BUILD_NOTES.)"""
  model, params, tokens = build((9, 9), layers=1)
  decoded, _ = decode_all(model, params, tokens)
  for t in range(T):
    lo = max(0, t - C + 1)
    window = jax.tree.map(lambda x: x[lo:t + 1], tokens)
    full = model.apply(params, window)[-1]
    np.testing.assert_allclose(decoded[t], full, rtol=2e-4, atol=2e-5, err_msg=f"step {t}")


def test_sliding_full_pass_matches_decode_everywhere(model_and_params):
  model, params, tokens = model_and_params
  decoded, _ = decode_all(model, params, tokens)
  full = model.apply(params, tokens)  # window mask of width C over all T steps
  np.testing.assert_allclose(decoded, full, rtol=2e-4, atol=2e-5)


def test_window_really_forgets(model_and_params):
  """A token beyond the receptive field (layers * (C - 1) back) leaves today's logits unchanged."""
  model, params, tokens = model_and_params
  base = model.apply(params, tokens)[-1]
  far = tokens.replace(prev_reward=tokens.prev_reward.at[T - 1 - 2 * (C - 1) - 1].add(5.0))
  near = tokens.replace(prev_reward=tokens.prev_reward.at[T - C + 1].add(5.0))
  np.testing.assert_allclose(model.apply(params, far)[-1], base, rtol=1e-6)
  assert not np.allclose(model.apply(params, near)[-1], base)


def test_width_not_divisible_by_heads_is_refused():
  model = TransitionTransformer(num_actions=5, context_len=4, width=10, heads=4, obs_nvec=(9, 9))
  with pytest.raises(ValueError, match="width 10 is not divisible by heads 4"):
    model.init(jax.random.key(0), random_tokens(jax.random.key(0), 4, (9, 9)))


def test_family_embedding_reads_missing_observation_entries_as_zero():
  """A DarkRoom (x, y) observation under a DarkKeyToDoor-wide embedding (x, y, has_key) is (x, y, 0)."""
  model = TransitionTransformer(num_actions=5, context_len=8, layers=1, width=16, heads=2, obs_nvec=(13, 13, 2))
  xy = jnp.array([[1, 2], [3, 4], [8, 8]], jnp.int8)
  tok = lambda obs: Tokens(obs=obs, prev_action=jnp.array([5, 0, 1]), prev_reward=jnp.zeros(3),
                           prev_done=jnp.array([True, False, False]))
  params = model.init(jax.random.key(0), tok(xy))
  padded = jnp.concatenate([xy, jnp.zeros((3, 1), jnp.int8)], axis=-1)
  np.testing.assert_array_equal(np.asarray(model.apply(params, tok(xy))), np.asarray(model.apply(params, tok(padded))))


@pytest.mark.parametrize("encoder", ["linear", "patch"])
def test_chunked_attention_and_patch_frames_match_decode(encoder):
  """Query blocks of 3 steps (7 blocks over 21 steps, a window of 8) give the one-block pass's logits, and
  the cached decode reproduces them at every step, for the linear and the patch frame encoder."""
  key = jax.random.key(3)
  ko, ka, kr, kd = jax.random.split(key, 4)
  tokens = Tokens(obs=jax.random.bernoulli(ko, 0.3, (T, 4, 4, 2)), prev_action=jax.random.randint(ka, (T,), 0, 6),
                  prev_reward=jax.random.normal(kr, (T,)), prev_done=jax.random.bernoulli(kd, 0.2, (T,)))
  kw = dict(num_actions=5, context_len=C, layers=2, width=16, heads=4, frame_encoder=encoder, patch=2,
            patch_features=4)
  blocked = TransitionTransformer(attention_chunk=3, **kw)
  whole = TransitionTransformer(attention_chunk=0, **kw)
  params = blocked.init(jax.random.key(0), tokens)
  a, b = blocked.apply(params, tokens), whole.apply(params, tokens)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  dec, _ = decode_all(blocked, params, tokens)
  np.testing.assert_allclose(np.asarray(dec), np.asarray(a), rtol=1e-4, atol=1e-4)
  valid = jnp.arange(T) < 15                     # padding after step 15: earlier steps never see it
  np.testing.assert_allclose(np.asarray(blocked.apply(params, tokens, valid))[:15], np.asarray(a)[:15],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("obs_nvec", [(9, 9), None], ids=["grid", "image"])
def test_transition_tokens_carry_the_previous_observation(obs_nvec):
  """A one-layer model with a one-step context sees only its own token: with transition tokens its
  logits at t move with obs_{t-1}, with step tokens they do not."""
  tokens = random_tokens(jax.random.key(1), T, obs_nvec)
  other = tokens.replace(obs=tokens.obs.at[T - 2].set(random_tokens(jax.random.key(7), T, obs_nvec).obs[3]))
  assert not np.array_equal(other.obs[T - 2], tokens.obs[T - 2])
  for kind, moves in (("step", False), ("transition", True)):
    model, params, _ = build(obs_nvec, layers=1, tokens=kind, context_len=1)
    a, b = model.apply(params, tokens)[-1], model.apply(params, other)[-1]
    assert (not np.allclose(a, b)) == moves, kind
    decoded, _ = decode_all(model, params, other)
    np.testing.assert_allclose(decoded[-1], b, rtol=2e-4, atol=2e-5)


def test_transition_tokens_see_no_previous_observation_across_padding():
  """The first valid step after padding gets the "none" previous observation, as the first step of an
  unpadded stream does: padding in front leaves every valid step's logits as they were."""
  model, params, tokens = build((9, 9), layers=2, tokens="transition")
  pad = 3
  padded = jax.tree.map(lambda x: jnp.concatenate([x[-pad:], x]), tokens)
  valid = jnp.arange(T + pad) >= pad
  np.testing.assert_allclose(model.apply(params, padded, valid)[pad:], model.apply(params, tokens),
                             rtol=2e-4, atol=2e-5)


def test_unknown_token_kind_is_refused():
  with pytest.raises(ValueError, match="tokens must be 'step' or 'transition'"):
    build((9, 9), layers=1, tokens="pairs")


def test_explore_mark_moves_the_logits_only_when_the_model_reads_it():
  """Flipping whether the previous action explored moves the next logits of a `mark_explore` model (and
  its cached decode agrees), and leaves a plain model's as they were; a marking model refuses tokens
  without the mark."""
  tokens = random_tokens(jax.random.key(1), T, (9, 9))
  tokens = tokens.replace(prev_explore=jax.random.bernoulli(jax.random.key(4), 0.3, (T,)))
  flipped = tokens.replace(prev_explore=tokens.prev_explore.at[T - 1].set(~tokens.prev_explore[T - 1]))
  for mark in (False, True):
    model = TransitionTransformer(num_actions=5, context_len=C, layers=2, width=16, heads=4, obs_nvec=(9, 9),
                                  mark_explore=mark)
    params = model.init(jax.random.key(0), tokens)
    a, b = model.apply(params, tokens), model.apply(params, flipped)
    np.testing.assert_allclose(a[:-1], b[:-1], rtol=1e-6)          # causal: earlier steps never see it
    assert (not np.allclose(a[-1], b[-1])) == mark
    decoded, _ = decode_all(model, params, flipped)
    np.testing.assert_allclose(decoded, b, rtol=2e-4, atol=2e-5)
  with pytest.raises(ValueError, match="mark_explore=True needs Tokens.prev_explore"):
    model.apply(params, tokens.replace(prev_explore=None))
