"""The energy MLP and the GRU sequence model: shapes, exact normalisation, sampling consistency."""
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np

from algorithms.preference_density import networks


def test_energy_network_shapes():
    net = networks.make_energy_network(hidden=8, num_outputs=3, input_scale=5.0)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    out = net.apply(params, jnp.ones((7, 2)))
    chex.assert_shape(out, (7, 3))
    chex.assert_type(out, jnp.float32)


def test_valid_positions_and_lengths_by_hand():
    tokens = jnp.array([[2, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]])
    np.testing.assert_array_equal(networks.lengths(tokens), [2, 0, 3])
    np.testing.assert_array_equal(networks.valid_positions(tokens),
                                  [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])


def test_sequence_model_is_exactly_normalised_and_samples_follow_log_prob():
    model = networks.make_sequence_model(vocab_size=3, max_length=3, hidden=8)
    params = model.init(jax.random.PRNGKey(0))
    seqs = [list(t) + [networks.EOS] * (4 - len(t)) for n in range(4) for t in itertools.product([1, 2], repeat=n)]
    log_p = model.log_prob(params, jnp.array(seqs))
    chex.assert_shape(log_p, (15,))
    np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, rtol=1e-5)  # the EOS is forced at the end

    samples = model.sample(params, jax.random.PRNGKey(2), 10_000)
    chex.assert_shape(samples, (10_000, 4))
    n = np.asarray(networks.lengths(samples))
    valid = np.arange(4)[None, :] < n[:, None]
    np.testing.assert_array_equal(np.asarray(samples) != networks.EOS, valid)  # tokens, then only EOS
    seq_lengths = np.array([sum(1 for t in s if t) for s in seqs])
    exact = np.array([np.exp(log_p)[seq_lengths == k].sum() for k in range(4)])  # length marginal by enumeration
    np.testing.assert_allclose(np.bincount(n, minlength=4) / n.size, exact, atol=0.02)  # 4σ at 10k draws
    first = {tuple(s): p for s, p in zip(seqs, np.exp(log_p))}
    drawn = np.mean([tuple(s) == (1, 2, 0, 0) for s in np.asarray(samples[:5000])])
    assert abs(drawn - first[(1, 2, 0, 0)]) < 0.03
