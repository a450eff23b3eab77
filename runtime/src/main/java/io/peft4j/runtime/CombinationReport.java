package io.peft4j.runtime;

import java.util.Collections;
import java.util.Map;

/**
 * What {@link PeftModel#addWeightedAdapter} built.
 *
 * @param adapterName    the new adapter
 * @param combination    how it was combined
 * @param relativeErrors per layer, {@code ‖A·B − Σ w_i s_i A_i B_i‖_F / ‖Σ w_i s_i A_i B_i‖_F}: 0 (to
 *                       rounding) for {@link Combination#CAT}, the truncation error for
 *                       {@link Combination#SVD}, the cross terms for {@link Combination#LINEAR}
 */
public record CombinationReport(String adapterName, Combination combination, Map<String, Double> relativeErrors) {

    public CombinationReport {
        relativeErrors = Collections.unmodifiableMap(relativeErrors);
    }

    /** The largest per-layer relative error. */
    public double worstRelativeError() {
        return relativeErrors.values().stream().mapToDouble(Double::doubleValue).max().orElse(0);
    }
}
