package io.peft4j.runtime.method;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A scalar graph constant whose value can be changed after graphs were built with it: how adapters
 * switch on and off (a scale of 0) without rebuilding the user's graph.
 */
public final class GraphScalar {

    private final SDVariable constant;

    /** Creates {@code name} in {@code sameDiff} with {@code value}. */
    public GraphScalar(SameDiff sameDiff, String name, DataType dtype, double value) {
        this.constant = sameDiff.constant(name, Nd4j.scalar(dtype, value));
    }

    public SDVariable variable() {
        return constant;
    }

    public double value() {
        return constant.getArr().getDouble(0);
    }

    public void set(double value) {
        constant.getArr().assign(value);
    }
}
