package io.peft4j.runtime;

import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

/** Central finite differences against SameDiff's gradients, for fp64 graphs. */
final class FiniteDifferences {

    private FiniteDifferences() {
    }

    /** The worst relative error over every element of {@code parameters} of the scalar {@code loss}. */
    static double worstRelativeError(SameDiff sd, Map<String, INDArray> feed, List<String> parameters, String loss) {
        Map<String, INDArray> analytic = sd.calculateGradients(feed, parameters);
        double eps = 1e-6;
        double worst = 0;
        for (String name : parameters) {
            INDArray parameter = sd.getVariable(name).getArr();
            for (long i = 0; i < parameter.length(); i++) {
                double original = parameter.getDouble(i);
                parameter.putScalar(i, original + eps);
                double plus = sd.output(feed, loss).get(loss).getDouble(0);
                parameter.putScalar(i, original - eps);
                double minus = sd.output(feed, loss).get(loss).getDouble(0);
                parameter.putScalar(i, original);
                double numeric = (plus - minus) / (2 * eps);
                double exact = analytic.get(name).getDouble(i);
                worst = Math.max(worst, Math.abs(numeric - exact) / Math.max(Math.abs(numeric) + Math.abs(exact), 1e-8));
            }
        }
        return worst;
    }
}
