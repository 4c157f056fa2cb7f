"""The shifted power law and the compute-to-loss law, numpy against hand values and against jax."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayes_l2l.laws import (
    compute_loss,
    compute_loss_jax,
    inverse_shifted_power_law,
    shifted_power_law,
    shifted_power_law_derivative,
    shifted_power_law_jax,
)


def test_shifted_power_law_hand_values() -> None:
    # 0.5 * (3 - 1)**2 + 1.5 = 3.5 ; 0.5 * (5 - 1)**0.5 + 1.5 = 2.5
    assert shifted_power_law(3.0, 0.5, 2.0, 1.0, 1.5) == pytest.approx(3.5)
    assert shifted_power_law(5.0, 0.5, 0.5, 1.0, 1.5) == pytest.approx(2.5)
    out = shifted_power_law(np.array([2.0, 3.0]), 1.0, 1.0, 1.0, 0.0)
    np.testing.assert_allclose(out, [1.0, 2.0])


def test_shifted_power_law_outside_domain_is_nan_unless_floored() -> None:
    out = shifted_power_law(np.array([0.5, 1.0, 2.0]), 1.0, 1.5, 1.0, 0.2)
    assert np.isnan(out[0]) and np.isnan(out[1]) and np.isfinite(out[2])
    floored = shifted_power_law(np.array([0.5, 2.0]), 1.0, 1.5, 1.0, 0.2, floor=1e-6)
    assert np.isfinite(floored).all()
    assert floored[0] == pytest.approx(0.2 + 1e-9)


def test_inverse_round_trip_and_domain() -> None:
    x = np.linspace(2.2, 5.0, 9)
    y = shifted_power_law(x, 0.35, 1.2, 1.8, 1.3)
    np.testing.assert_allclose(inverse_shifted_power_law(y, 0.35, 1.2, 1.8, 1.3), x, rtol=1e-12)
    assert np.isnan(inverse_shifted_power_law(1.3, 0.35, 1.2, 1.8, 1.3))  # y == E_y: below the range


def test_derivative_matches_finite_difference() -> None:
    x = np.array([2.5, 3.0, 4.5])
    h = 1e-6
    law = (0.4, 1.3, 1.7, 1.1)
    fd = (shifted_power_law(x + h, *law) - shifted_power_law(x - h, *law)) / (2 * h)
    np.testing.assert_allclose(shifted_power_law_derivative(x, 0.4, 1.3, 1.7), fd, rtol=1e-6)


def test_jax_law_matches_numpy_and_has_finite_gradients_with_floor() -> None:
    x = np.linspace(2.0, 5.0, 7)
    ref = shifted_power_law(x, 0.35, 1.2, 1.8, 1.3)
    got = np.asarray(shifted_power_law_jax(jnp.asarray(x), 0.35, 1.2, 1.8, 1.3))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    # E_x above some x: with a floor, value and gradient stay finite
    grad = jax.grad(
        lambda ex: jnp.sum(shifted_power_law_jax(jnp.asarray(x), 0.35, 1.2, ex, 1.3, floor=1e-6))
    )(2.5)
    assert np.isfinite(float(grad))


def test_compute_loss_hand_value_and_limits() -> None:
    # E + ((A/N)**(alpha/beta) + B/D)**beta with A/N = 1, B/D = 1, beta = 0.5 -> E + sqrt(2)
    assert compute_loss(1e8, 1e9, 1.7, 1e8, 1e9, 0.3, 0.5) == pytest.approx(1.7 + np.sqrt(2.0))
    # decreasing in N and in D, tending to E
    d = np.geomspace(1e7, 1e13, 7)
    loss_d = compute_loss(4e8, d, 1.8, 5e8, 3.1e8, 0.34, 0.3)
    assert np.all(np.diff(loss_d) < 0)
    n = np.geomspace(1e7, 1e13, 7)
    assert np.all(np.diff(compute_loss(n, 1e10, 1.8, 5e8, 3.1e8, 0.34, 0.3)) < 0)
    assert compute_loss(1e20, 1e22, 1.8, 5e8, 3.1e8, 0.34, 0.3) == pytest.approx(1.8, abs=1e-3)


def test_compute_loss_jax_matches_numpy() -> None:
    n = np.array([1.6e8, 4.1e8, 1e9])
    d = np.array([3e9, 8e9, 2e10])
    ref = compute_loss(n, d, 1.8, 5e8, 3.1e8, 0.34, 0.3)
    got = np.asarray(compute_loss_jax(jnp.asarray(n), jnp.asarray(d), 1.8, 5e8, 3.1e8, 0.34, 0.3))
    np.testing.assert_allclose(got, ref, rtol=1e-5)
