"""Receptive fields of every decoder context, measured by autodiff, against the documented geometry.

The expected sets are computed here *independently* of the library:

* ``stack`` (n layers of 3x3, mask A then mask B): by propagating hand-written
  offset sets, and by the closed form it implies. A path back from the output
  takes n steps; an "up" step moves the column by -1, 0 or +1; a same-row step
  moves it by -1 (mask A or B) or 0 (mask B only). So with ``r`` up steps the
  column offset ranges over ``[-n, r]``::

      row i - r (1 <= r <= n):  columns j - n .. j + r
      row i:                    columns j - n .. j - 1

  (the upper-right triangle ``j + r < col <= j + n`` is PixelCNN's blind spot).
* ``window`` (A x B): rows ``i-B .. i-1`` in columns
  ``j-floor((A-1)/2) .. j+floor(A/2)``, and in row ``i`` the columns
  ``j-floor((A-1)/2) .. j-1``.
* ``grayscale``: the same window, all three channels of each pixel.
* ``full``: every earlier pixel in raster order. ``none``: nothing.
* ``gated`` (n layers; vertical 2x3 and horizontal 2x2 stacks): the window of
  width 2n + 1 and height n, no blind spot, by propagating hand-written
  offsets through the two streams; ``gated_full``: every earlier pixel.

For RGB (discretized logistic mixture) sub-pixel ``c`` additionally sees the
sub-pixels ``c' < c`` of its own pixel, and nothing else of it.

Besides autodiff, :func:`_assert_causal` checks causality with no gradients at
all: one batched forward pass where image ``k`` is re-randomized at pixel ``k``
and everything after it must leave the parameters at pixel ``k`` unchanged.
"""

import numpy as np
import pytest

import vlae_tf
from helpers import tiny_config
from vlae_tf import masked_conv as mc

# Hand-written offsets (di, dj) of the 3x3 PixelCNN masks (not taken from the library).
MASK_A_OFFSETS = {(-1, -1), (-1, 0), (-1, 1), (0, -1)}
MASK_B_OFFSETS = MASK_A_OFFSETS | {(0, 0)}


def _clip(cells, h, w):
  return {(a, b) for a, b in cells if 0 <= a < h and 0 <= b < w}


def _to_array(cells, h, w):
  out = np.zeros((h, w), bool)
  for a, b in cells:
    out[a, b] = True
  return out


def stack_field_by_propagation(h, w, i, j, n):
  """Offsets of the last layer first, back to the input; zero padding drops outside cells."""
  layers = [MASK_A_OFFSETS] + [MASK_B_OFFSETS] * (n - 1)
  current = {(i, j)}
  for offs in reversed(layers):
    current = _clip({(a + u, b + v) for a, b in current for u, v in offs}, h, w)
  return _to_array(current, h, w)


def stack_field_formula(h, w, i, j, n):
  cells = {(i, b) for b in range(j - n, j)}
  for r in range(1, n + 1):
    cells |= {(i - r, b) for b in range(j - n, j + r + 1)}
  return _to_array(_clip(cells, h, w), h, w)


def window_field_formula(h, w, i, j, a, b):
  left, right = (a - 1) // 2, a // 2
  cells = {(r, col) for r in range(i - b, i) for col in range(j - left, j + right + 1)}
  cells |= {(i, col) for col in range(j - left, j)}
  return _to_array(_clip(cells, h, w), h, w)


def full_field(h, w, i, j):
  out = np.zeros((h, w), bool)
  out.reshape(-1)[:i * w + j] = True
  return out


def _model(context, image_shape, **overrides):
  rgb = image_shape[-1] == 3
  cfg = tiny_config(context=context, image_shape=image_shape,
                    likelihood="logistic_mixture" if rgb else "bernoulli",
                    latent_dim=2, prior="normal", decoder_filters=4, encoder_filters=4,
                    cond_filters=4, num_bits=3, **overrides)
  return vlae_tf.build_model(cfg)


def _border_pixels(h, w):
  """Corners, an interior pixel, and pixels one step in from the borders."""
  return [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (h // 2, w // 2),
          (h - 2, 1), (1, w - 2)]


def _rgb_expected(spatial, i, j, c):
  """Spatial context on all channels, plus sub-pixels c' < c of the own pixel."""
  out = np.repeat(spatial[..., None], 3, axis=-1)
  out[i, j, :] = False
  out[i, j, :c] = True
  return out


def _assert_causal(model, seed=0):
  """No gradients: re-randomize pixel k (sub-pixels >= c) and all later pixels; params at k stay.

  Also returns how many of the re-randomized inputs changed some *earlier*
  pixel's parameters when (only) an earlier pixel was changed, so callers can
  check that the probe itself is sensitive.
  """
  h, w, ch = model.image_shape
  n = model.num_levels
  rng = np.random.default_rng(seed)
  base = rng.integers(0, n, (1, h, w, ch)).astype(np.float32)
  batch, where = [], []
  for k in range(h * w):
    i, j = divmod(k, w)
    for c in range(ch):
      x = base.copy().reshape(h * w, ch)
      x[k + 1:] = rng.integers(0, n, x[k + 1:].shape)
      x[k, c:] = (x[k, c:] + rng.integers(1, n, ch - c)) % n     # really different values
      batch.append(x.reshape(h, w, ch))
      where.append((i, j, c))
  xs = np.concatenate([base, np.stack(batch)])
  z = np.tile(rng.standard_normal((1, model.latent_size)).astype(np.float32), (len(xs), 1))
  params = model.likelihood.conditional_params(model.decoder_raw(xs, z), xs).numpy()
  for b, (i, j, c) in enumerate(where, start=1):
    np.testing.assert_allclose(params[b, i, j, c], params[0, i, j, c], rtol=1e-5, atol=1e-5,
                               err_msg=f"params of sub-pixel {(i, j, c)} depend on itself or later")


# ------------------------------------------------------------------ stack

def test_stack_formula_agrees_with_offset_propagation():
  for n in range(1, 7):
    for i in range(10):
      for j in range(10):
        np.testing.assert_array_equal(stack_field_formula(10, 10, i, j, n),
                                      stack_field_by_propagation(10, 10, i, j, n))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
def test_stack_receptive_field_by_autodiff(n):
  h = w = 10
  model = _model("stack", (h, w, 1), decoder_layers=n, decoder_blocks=0)
  for i, j in _border_pixels(h, w) + [(7, 5)]:
    got = vlae_tf.receptive_field(model, (i, j))
    want = stack_field_formula(h, w, i, j, n)
    np.testing.assert_array_equal(got, want, err_msg=f"stack n={n}, pixel {(i, j)}")
    # The library's own geometry-based prediction agrees too.
    np.testing.assert_array_equal(
        vlae_tf.expected_receptive_field(model.decoder.geometry, model.image_shape, (i, j)), want)
  if n == 3:
    # The blind spot is real: (i-1, j+2) is invisible to (5, 5) with 3 layers, (i-1, j+1) is not.
    rf = vlae_tf.receptive_field(model, (5, 5))
    assert not rf[4, 7] and rf[4, 6] and rf[2, 8] and not rf[5, 5]


def test_stack_with_5x5_kernels():
  """k = 5: mask A reads the two rows above (columns -2..2) and two pixels to the left."""
  off_a = {(u, v) for u in (-2, -1) for v in range(-2, 3)} | {(0, -2), (0, -1)}
  off_b = off_a | {(0, 0)}
  h = w = 10
  model = _model("stack", (h, w, 1), decoder_layers=2, decoder_kernel=5, decoder_blocks=0)
  for i, j in [(9, 9), (5, 5), (0, 4), (4, 0), (9, 2)]:
    current = {(i, j)}
    for offs in (off_b, off_a):
      current = _clip({(a + u, b + v) for a, b in current for u, v in offs}, h, w)
    np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j)), _to_array(current, h, w))


# ------------------------------------------------------------------ window

@pytest.mark.parametrize("window", [(7, 4), (4, 2), (3, 2), (2, 3), (1, 1), (3, 0)])
def test_window_receptive_field_by_autodiff(window):
  a, b = window
  h = w = 12
  model = _model("window", (h, w, 1), decoder_window=window)
  for i, j in _border_pixels(h, w) + [(5, 9)]:
    got = vlae_tf.receptive_field(model, (i, j))
    np.testing.assert_array_equal(got, window_field_formula(h, w, i, j, a, b),
                                  err_msg=f"window {window}, pixel {(i, j)}")


def test_zoo_windows_are_tested():
  """Every window used by a zoo config is among the parametrized windows above."""
  tested = {(7, 4), (4, 2), (3, 2), (2, 3), (1, 1), (3, 0)}
  for name in vlae_tf.zoo.list_configs():
    m = vlae_tf.zoo.get_config(name).model
    if m.decoder_context in ("window", "grayscale"):
      assert tuple(m.decoder_window) in tested, name


def test_window_7x4_interior_shape():
  """Spelled out for the CIFAR-10 window: 4 full rows of 7 and 3 pixels to the left."""
  rf = window_field_formula(12, 12, 6, 6, 7, 4)
  assert rf.sum() == 4 * 7 + 3
  assert rf[2:6, 3:10].all() and rf[6, 3:6].all() and not rf[6, 6:].any() and not rf[7:].any()


@pytest.mark.parametrize("context", ["window", "grayscale"])
def test_rgb_window_and_grayscale_subpixels(context):
  h = w = 12
  model = _model(context, (h, w, 3), decoder_window=(7, 4))
  for i, j in [(0, 0), (6, 6), (11, 11), (3, 0), (0, 11)]:
    spatial = window_field_formula(h, w, i, j, 7, 4)
    for c in range(3):
      got = vlae_tf.receptive_field(model, (i, j, c))
      np.testing.assert_array_equal(got, _rgb_expected(spatial, i, j, c),
                                    err_msg=f"{context}, sub-pixel {(i, j, c)}")
    # (i, j) without a channel: the union over sub-pixels = R and G of the own pixel.
    np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j)),
                                  _rgb_expected(spatial, i, j, 2))


# ------------------------------------------------------------------ full / none

@pytest.mark.parametrize("layers", [1, 2, 4])
def test_full_sees_every_earlier_pixel(layers):
  """The full-image window alone, or followed by mask-B 3x3 layers: still exactly the past."""
  h, w = 6, 7
  model = _model("full", (h, w, 1), decoder_layers=layers)
  assert len(model.decoder.geometry) == layers
  for i, j in _border_pixels(h, w) + [(3, 4), (5, 6)]:
    np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j)), full_field(h, w, i, j),
                                  err_msg=f"full ({layers} layers), pixel {(i, j)}")


def test_full_rgb():
  h, w = 4, 4
  model = _model("full", (h, w, 3))
  for i, j in [(0, 0), (2, 1), (3, 3)]:
    for c in range(3):
      np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j, c)),
                                    _rgb_expected(full_field(h, w, i, j), i, j, c))


def test_none_sees_nothing():
  model = _model("none", (5, 5, 1))
  for i, j in _border_pixels(5, 5):
    assert not vlae_tf.receptive_field(model, (i, j)).any()


def test_none_rgb_sees_only_earlier_subpixels_of_own_pixel():
  model = _model("none", (4, 4, 3))
  empty = np.zeros((4, 4), bool)
  for i, j in [(0, 0), (2, 3)]:
    for c in range(3):
      np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j, c)),
                                    _rgb_expected(empty, i, j, c))


# ------------------------------------------------------------------ gated (two streams)
# Hand-written offsets of the gated decoder's kernels (not taken from the library).
V_FIRST = {(-1, -1), (-1, 0), (-1, 1)}                          # x -> v_0: the row above
H_FIRST = {(0, -1)}                                              # x -> h_0: the pixel to the left
V_NEXT = {(u, v) for u in (-1, 0) for v in (-1, 0, 1)}           # v_{k-1} -> v_k (2x3)
H_NEXT = {(-1, -1), (-1, 0), (0, -1), (0, 0)}                    # h_{k-1} -> h_k (2x2)


def gated_field_by_propagation(h, w, i, j, n):
  """Cells of x that h_{n-1} at (i, j) reads: v_k and h_k as sets, walked back by hand."""
  def v_field(k, cells):
    for _ in range(k):
      cells = _clip({(a + u, b + v) for a, b in cells for u, v in V_NEXT}, h, w)
    return _clip({(a + u, b + v) for a, b in cells for u, v in V_FIRST}, h, w)

  seen, cells = set(), {(i, j)}
  for k in range(n - 1, -1, -1):            # h_k reads v_k at (0, 0), and h_{k-1} (or x)
    seen |= v_field(k, cells)
    if k == 0:
      seen |= _clip({(a + u, b + v) for a, b in cells for u, v in H_FIRST}, h, w)
    else:
      cells = _clip({(a + u, b + v) for a, b in cells for u, v in H_NEXT}, h, w)
  return _to_array(seen, h, w)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_gated_receptive_field_is_the_window(n):
  """n layers see exactly the (2n + 1) x n window, no blind spot; by autodiff, by hand, by geometry."""
  h = w = 11
  model = _model("gated", (h, w, 1), decoder_layers=n, decoder_blocks=1)
  for i, j in _border_pixels(h, w) + [(8, 3)]:
    want = window_field_formula(h, w, i, j, 2 * n + 1, n)
    np.testing.assert_array_equal(gated_field_by_propagation(h, w, i, j, n), want)
    np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j)), want,
                                  err_msg=f"gated n={n}, pixel {(i, j)}")
    np.testing.assert_array_equal(
        vlae_tf.expected_receptive_field(model.decoder.geometry, model.image_shape, (i, j)), want)


def test_gated_has_no_blind_spot_where_the_stack_has_one():
  """3 layers: (5, 5) sees (4, 8) through the gated decoder, not through the 3x3 stack."""
  gated = vlae_tf.receptive_field(_model("gated", (10, 10, 1), decoder_layers=3), (5, 5))
  stack = vlae_tf.receptive_field(_model("stack", (10, 10, 1), decoder_layers=3), (5, 5))
  assert gated[4, 8] and not stack[4, 8]


@pytest.mark.parametrize("layers", [1, 3])
def test_gated_full_sees_every_earlier_pixel(layers):
  h, w = 6, 7
  model = _model("gated_full", (h, w, 1), decoder_layers=layers)
  for i, j in _border_pixels(h, w) + [(3, 4)]:
    np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j)), full_field(h, w, i, j),
                                  err_msg=f"gated_full ({layers} layers), pixel {(i, j)}")
    np.testing.assert_array_equal(vlae_tf.expected_receptive_field(
        model.decoder.geometry, model.image_shape, (i, j)), full_field(h, w, i, j))


@pytest.mark.parametrize("context", ["gated", "gated_full"])
def test_gated_rgb_subpixels(context):
  h = w = 6
  model = _model(context, (h, w, 3), decoder_layers=2)
  for i, j in [(0, 0), (3, 3), (5, 5), (2, 0)]:
    spatial = (window_field_formula(h, w, i, j, 5, 2) if context == "gated"
               else full_field(h, w, i, j))
    for c in range(3):
      np.testing.assert_array_equal(vlae_tf.receptive_field(model, (i, j, c)),
                                    _rgb_expected(spatial, i, j, c))


# ------------------------------------------------------------------ causality without autodiff

@pytest.mark.parametrize("context,shape,overrides", [
    ("stack", (6, 6, 1), {"decoder_layers": 4}),
    ("window", (6, 6, 1), {"decoder_window": (4, 2)}),
    ("full", (5, 5, 1), {}),
    ("full", (5, 5, 1), {"decoder_layers": 3}),
    ("none", (4, 4, 1), {}),
    ("stack", (4, 4, 3), {"decoder_layers": 2}),
    ("window", (5, 5, 3), {"decoder_window": (7, 4)}),
    ("grayscale", (5, 5, 3), {"decoder_window": (3, 2)}),
    ("full", (4, 4, 3), {}),
    ("gated", (6, 6, 1), {"decoder_layers": 3}),
    ("gated", (4, 4, 3), {"decoder_layers": 2}),
    ("gated_full", (5, 5, 1), {"decoder_layers": 2}),
])
def test_no_output_depends_on_its_own_or_a_later_pixel(context, shape, overrides):
  _assert_causal(_model(context, shape, **overrides))


def test_causality_probe_detects_a_leaky_mask():
  """The probe above can fail: give the first layer mask B (it then reads its own pixel)."""
  model = _model("stack", (4, 4, 1), decoder_layers=2)
  model.decoder.first.mask = mc.mask_b(3)[0]
  with pytest.raises(AssertionError, match="depend on itself or later"):
    _assert_causal(model)
  assert vlae_tf.receptive_field(model, (2, 2))[2, 2]
