import numpy as np

from training.vectors import normalise_rows


def test_normalise_rows_gives_unit_rows_and_keeps_zero_rows_zero() -> None:
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, -2.0]], dtype=np.float64)
    unit = normalise_rows(vectors)
    assert unit.dtype == np.float32
    np.testing.assert_allclose(unit, [[0.6, 0.8], [0.0, 0.0], [0.0, -1.0]])
    assert np.isfinite(unit).all()
