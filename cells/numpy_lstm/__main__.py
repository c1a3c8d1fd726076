"""``python -m cells.numpy_lstm``: the NumPy kernel's gradients against finite differences (float64)."""

from cells.numpy_lstm.kernel import check_gradients

if __name__ == "__main__":
    error = check_gradients()
    verdict = "ok" if error < 1e-6 else "TOO LARGE"
    print(f"worst relative error, analytic vs finite differences: {error:.2e} ({verdict})")
    raise SystemExit(0 if error < 1e-6 else 1)
