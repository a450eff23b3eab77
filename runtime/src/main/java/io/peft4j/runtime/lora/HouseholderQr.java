package io.peft4j.runtime.lora;

/**
 * The reduced QR decomposition {@code M = Q·R} of an {@code [m, n]} matrix by Householder reflections,
 * in double precision, with LAPACK's sign convention ({@code geqrf}: each reflection maps the column to
 * {@code -sign(α)·‖x‖}), so that OLoRA's factors have the signs PyTorch's {@code torch.linalg.qr} gives
 * them rather than those of another QR routine. {@code Q [m, k]}, {@code R [k, n]}, {@code k = min(m, n)}.
 */
final class HouseholderQr {

    private final double[][] q;
    private final double[][] r;

    private HouseholderQr(double[][] q, double[][] r) {
        this.q = q;
        this.r = r;
    }

    static HouseholderQr of(double[][] matrix) {
        int m = matrix.length;
        int n = matrix[0].length;
        int k = Math.min(m, n);
        double[][] a = new double[m][];
        for (int i = 0; i < m; i++) {
            a[i] = matrix[i].clone();
        }
        double[][] reflectors = new double[k][];
        double[] taus = new double[k];
        for (int j = 0; j < k; j++) {
            double alpha = a[j][j];
            double tailNorm = 0;
            for (int i = j + 1; i < m; i++) {
                tailNorm = Math.hypot(tailNorm, a[i][j]);
            }
            double[] v = new double[m];
            v[j] = 1;
            if (tailNorm == 0) {
                // LAPACK's dlarfg: no reflection (tau = 0) when the column below the diagonal is already zero.
                reflectors[j] = v;
                taus[j] = 0;
                continue;
            }
            double beta = -Math.copySign(Math.hypot(alpha, tailNorm), alpha);
            taus[j] = (beta - alpha) / beta;
            double scale = 1 / (alpha - beta);
            for (int i = j + 1; i < m; i++) {
                v[i] = a[i][j] * scale;
            }
            reflectors[j] = v;
            applyReflector(a, v, taus[j], j, j, n);
        }
        double[][] r = new double[k][n];
        for (int i = 0; i < k; i++) {
            for (int c = i; c < n; c++) {
                r[i][c] = a[i][c];
            }
        }
        double[][] q = new double[m][k];
        for (int i = 0; i < k; i++) {
            q[i][i] = 1;
        }
        for (int j = k - 1; j >= 0; j--) {
            applyReflector(q, reflectors[j], taus[j], j, 0, k);
        }
        return new HouseholderQr(q, r);
    }

    /** {@code M[from:, cols] = (I - tau·v·vᵀ) · M[from:, cols]} for columns {@code [firstColumn, lastColumn)}. */
    private static void applyReflector(double[][] matrix, double[] v, double tau, int from, int firstColumn, int lastColumn) {
        if (tau == 0) {
            return;
        }
        for (int c = firstColumn; c < lastColumn; c++) {
            double dot = 0;
            for (int i = from; i < matrix.length; i++) {
                dot += v[i] * matrix[i][c];
            }
            dot *= tau;
            for (int i = from; i < matrix.length; i++) {
                matrix[i][c] -= dot * v[i];
            }
        }
    }

    /** {@code Q [m, k]} with orthonormal columns. */
    double[][] q() {
        return q;
    }

    /** {@code R [k, n]}, upper triangular. */
    double[][] r() {
        return r;
    }
}
