package io.peft4j.runtime.ia3;

import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.GraphScalar;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One adapter's (IA)³ vector on one layer: {@code l [out]} that rescales the output, or, feed-forward,
 * {@code l [in]} that rescales the input; ones at the start.
 *
 * <p>In a graph it is the trainable variable {@code <path>.ia3_l.<adapter>}, and the layer uses
 * {@code 1 + g·(l − 1)} with a graph constant {@code g} that is 1 while the vector is on and 0 while it
 * is off or merged, so graphs built before a switch or a merge follow it.
 */
final class Ia3Vector {

    private final String adapterName;
    private final boolean feedforward;
    private final SDVariable vector;
    private final GraphScalar gate;
    private final INDArray eagerVector;
    private boolean active;
    private boolean merged;
    private boolean removed;
    private int graphUses;

    Ia3Vector(AttachContext context, SameDiff sameDiff, String path, boolean feedforward, long length, DataType dtype) {
        this.adapterName = context.adapterName();
        this.feedforward = feedforward;
        INDArray ones = Nd4j.ones(dtype, length);
        if (sameDiff != null) {
            this.vector = sameDiff.var(context.variableName(sameDiff, path + ".ia3_l." + adapterName), ones);
            this.gate = new GraphScalar(sameDiff, context.variableName(sameDiff, path + ".ia3_gate." + adapterName), dtype, 0.0);
            this.eagerVector = null;
        } else {
            this.vector = null;
            this.gate = null;
            this.eagerVector = ones;
        }
    }

    /** {@code 1 + g·(l − 1)}: the vector while on, ones while off; counts a use. */
    SDVariable graphScale() {
        graphUses++;
        return vector.sub(1.0).mul(gate.variable()).add(1.0);
    }

    /** The vector while it is on and not merged, else {@code null}. */
    INDArray eagerScale() {
        return active && !merged && !removed ? array() : null;
    }

    private void refresh() {
        if (gate != null) {
            gate.set(active && !merged && !removed ? 1.0 : 0.0);
        }
    }

    void setActive(boolean value) {
        active = value;
        refresh();
    }

    void setMerged(boolean value) {
        merged = value;
        refresh();
    }

    void setRemoved() {
        removed = true;
        refresh();
    }

    boolean feedforward() {
        return feedforward;
    }

    boolean merged() {
        return merged;
    }

    boolean isGraph() {
        return vector != null;
    }

    int graphUses() {
        return graphUses;
    }

    String adapterName() {
        return adapterName;
    }

    String variableName() {
        return vector == null ? null : vector.name();
    }

    /** The live vector: {@code [out]}, or {@code [in]} when feed-forward. */
    INDArray array() {
        return eagerVector != null ? eagerVector : vector.getArr();
    }
}
