package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The gradients of {@code a ⊙ b} for operands of one shape, in one pass: {@code da = g ⊙ b} and
 * {@code db = g ⊙ a}, libnd4j's {@code multiply_bp} bit for bit.
 *
 * <p>Shapes: {@code a}, {@code b}, {@code g}, {@code da}, {@code db} of one length, contiguous.
 * libnd4j runs the two products as two passes over {@code g}; here each element of the three inputs
 * is read once.
 */
final class ProductGradientKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private final FloatRegion a;
    private final FloatRegion b;
    private final FloatRegion g;
    private final FloatRegion da;
    private final FloatRegion db;

    ProductGradientKernel(FloatRegion a, FloatRegion b, FloatRegion g, FloatRegion da, FloatRegion db) {
        int length = a.length();
        if (b.length() != length || g.length() != length || da.length() != length || db.length() != length) {
            throw new IllegalArgumentException("multiply_bp: operands of " + length + ", " + b.length() + " and " + g.length() + " elements");
        }
        this.a = a;
        this.b = b;
        this.g = g;
        this.da = da;
        this.db = db;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(a.length(), SPECIES.length(), 2L * a.length(), this::run);
    }

    private void run(int from, int to) {
        int i = from;
        for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += SPECIES.length()) {
            FloatVector gradient = FloatVector.fromByteBuffer(SPECIES, g.bytes(), g.at(i), FloatRegion.ORDER);
            FloatVector left = FloatVector.fromByteBuffer(SPECIES, a.bytes(), a.at(i), FloatRegion.ORDER);
            FloatVector right = FloatVector.fromByteBuffer(SPECIES, b.bytes(), b.at(i), FloatRegion.ORDER);
            gradient.mul(right).intoByteBuffer(da.bytes(), da.at(i), FloatRegion.ORDER);
            gradient.mul(left).intoByteBuffer(db.bytes(), db.at(i), FloatRegion.ORDER);
        }
        for (; i < to; i++) {
            float gradient = g.get(i);
            float left = a.get(i);
            da.put(i, gradient * b.get(i));
            db.put(i, gradient * left);
        }
    }
}
