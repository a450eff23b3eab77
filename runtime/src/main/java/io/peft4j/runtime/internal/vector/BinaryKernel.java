package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code z = a ∘ b} for {@code ∘} one of +, −, ×, ÷ over contiguous fp32 arrays, where {@code b}
 * either has {@code a}'s shape or is broadcast along one run of consecutive axes.
 *
 * <p>Shapes: {@code a} is viewed as {@code [outer, middle, inner]} and {@code b} as
 * {@code [outer, 1, inner]}; a bias {@code [d]} against {@code [.., d]} is {@code [1, .., d]}, a
 * per-row statistic {@code [b, t, 1]} against {@code [b, t, d]} is {@code [b·t, d, 1]}, an attention
 * mask {@code [b, 1, 1, t]} against {@code [b, h, t, t]} is {@code [b, h·t, t]}. {@link Layout}
 * finds that view, or that none exists, from the two shapes. When the broadcast operand is the
 * first, {@code reversed} swaps the operands back inside the arithmetic. Each element is one IEEE
 * operation, as in libnd4j, so results are the same bit for bit. {@code z} may be either input.
 * Arrays shorter than {@link KernelWarmUp#VECTOR_FROM} are computed element by element.
 */
final class BinaryKernel implements Runnable {
    /** The operations, with the libnd4j op names they replace. */
    enum Operation {
        ADD("add"), SUBTRACT("subtract"), MULTIPLY("multiply"), DIVIDE("divide");

        final String opName;

        Operation(String opName) {
            this.opName = opName;
        }

        static Operation named(String opName) {
            for (Operation operation : values()) {
                if (operation.opName.equals(opName)) {
                    return operation;
                }
            }
            return null;
        }
    }

    /** {@code a}'s shape as {@code [outer, middle, inner]} with {@code b} broadcast along {@code middle}. */
    record Layout(int outer, int middle, int inner) {
        /** The layout of {@code full} against {@code broadcast}, or {@code null} when {@code broadcast} is not of that form. */
        static Layout of(long[] full, long[] broadcast) {
            if (broadcast.length > full.length) {
                return null;
            }
            long outer = 1;
            long middle = 1;
            long inner = 1;
            int stage = 0; // 0: leading equal axes, 1: broadcast axes, 2: trailing equal axes
            for (int axis = 0; axis < full.length; axis++) {
                int fromEnd = full.length - axis;
                long size = full[axis];
                long other = fromEnd <= broadcast.length ? broadcast[broadcast.length - fromEnd] : 1;
                if (size == 1 && other == 1) {
                    continue;
                }
                boolean spread = other == 1;
                if (!spread && other != size) {
                    return null;
                }
                if (spread && stage == 0) {
                    stage = 1;
                } else if (!spread && stage == 1) {
                    stage = 2;
                } else if (spread && stage == 2) {
                    return null;
                }
                if (stage == 0) {
                    outer *= size;
                } else if (stage == 1) {
                    middle *= size;
                } else {
                    inner *= size;
                }
            }
            if (outer * middle * inner > Integer.MAX_VALUE) {
                return null;
            }
            return new Layout((int) outer, (int) middle, (int) inner);
        }
    }

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private final Operation operation;
    private final boolean reversed;
    private final FloatRegion a;
    private final FloatRegion b;
    private final FloatRegion z;
    private final Layout layout;

    /** {@code z = a ∘ b}, or {@code z = b ∘ a} when {@code reversed}; {@code b} broadcast as {@code layout} says. */
    BinaryKernel(Operation operation, boolean reversed, FloatRegion a, FloatRegion b, FloatRegion z, Layout layout) {
        long elements = (long) layout.outer() * layout.middle() * layout.inner();
        if (a.length() != elements || z.length() != elements || b.length() != (long) layout.outer() * layout.inner()) {
            throw new IllegalArgumentException(operation.opName + ": operands of " + a.length() + " and " + b.length()
                    + " elements do not fit " + layout + " with an output of " + z.length());
        }
        this.operation = operation;
        this.reversed = reversed;
        this.a = a;
        this.b = b;
        this.z = z;
        this.layout = layout;
    }

    @Override
    public void run() {
        KernelThreads threads = KernelThreads.shared();
        int elements = a.length();
        if (layout.middle() == 1) {
            threads.forRange(elements, SPECIES.length(), elements, (from, to) -> elementwise(from, to));
        } else if (layout.inner() == 1) {
            threads.forRange(elements, SPECIES.length(), elements, (from, to) -> perGroup(from, to));
        } else {
            threads.forRange(layout.outer() * layout.middle(), 1, elements, (from, to) -> perRow(from, to));
        }
    }

    /** Same shapes: b's element i goes with a's element i. */
    private void elementwise(int from, int to) {
        span(a.at(from), b.at(from), z.at(from), to - from);
    }

    /** b has one element per group of {@code middle} consecutive elements of a. */
    private void perGroup(int from, int to) {
        int middle = layout.middle();
        for (int start = from; start < to; ) {
            int group = start / middle;
            int end = Math.min(to, (group + 1) * middle);
            scalarSpan(a.at(start), b.get(group), z.at(start), end - start);
            start = end;
        }
    }

    /** Rows of {@code inner} elements; b's row for a's row r is r / middle. */
    private void perRow(int fromRow, int toRow) {
        int inner = layout.inner();
        for (int row = fromRow; row < toRow; row++) {
            int offset = row * inner;
            span(a.at(offset), b.at(row / layout.middle() * inner), z.at(offset), inner);
        }
    }

    /** {@code count} elements of a and b from the given byte offsets. */
    private void span(int aByte, int bByte, int zByte, int count) {
        int bound = a.length() < KernelWarmUp.VECTOR_FROM ? 0 : SPECIES.loopBound(count);
        FloatRegion first = reversed ? b : a;
        FloatRegion second = reversed ? a : b;
        int firstByte = reversed ? bByte : aByte;
        int secondByte = reversed ? aByte : bByte;
        switch (operation) {
            case ADD -> add(first, firstByte, second, secondByte, zByte, bound);
            case SUBTRACT -> subtract(first, firstByte, second, secondByte, zByte, bound);
            case MULTIPLY -> multiply(first, firstByte, second, secondByte, zByte, bound);
            case DIVIDE -> divide(first, firstByte, second, secondByte, zByte, bound);
            default -> throw new AssertionError(operation);
        }
        for (int i = bound; i < count; i++) {
            int step = i * Float.BYTES;
            z.bytes().putFloat(zByte + step, scalar(a.bytes().getFloat(aByte + step), b.bytes().getFloat(bByte + step)));
        }
    }

    /** {@code count} elements of a from {@code aByte} with one value of b. */
    private void scalarSpan(int aByte, float value, int zByte, int count) {
        int bound = a.length() < KernelWarmUp.VECTOR_FROM ? 0 : SPECIES.loopBound(count);
        switch (operation) {
            case ADD -> addValue(aByte, value, zByte, bound);
            case SUBTRACT -> {
                if (reversed) {
                    subtractFromValue(aByte, value, zByte, bound);
                } else {
                    addValue(aByte, -value, zByte, bound);
                }
            }
            case MULTIPLY -> multiplyValue(aByte, value, zByte, bound);
            case DIVIDE -> {
                if (reversed) {
                    divideValue(aByte, value, zByte, bound);
                } else {
                    divideByValue(aByte, value, zByte, bound);
                }
            }
            default -> throw new AssertionError(operation);
        }
        for (int i = bound; i < count; i++) {
            int step = i * Float.BYTES;
            z.bytes().putFloat(zByte + step, scalar(a.bytes().getFloat(aByte + step), value));
        }
    }

    // One loop per operation, each with its arithmetic inline and no vector crossing a method boundary: see UnaryKernel on why.

    private void add(FloatRegion first, int firstByte, FloatRegion second, int secondByte, int zByte, int bound) {
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            FloatVector.fromByteBuffer(SPECIES, first.bytes(), firstByte + step, FloatRegion.ORDER)
                    .add(FloatVector.fromByteBuffer(SPECIES, second.bytes(), secondByte + step, FloatRegion.ORDER))
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void subtract(FloatRegion first, int firstByte, FloatRegion second, int secondByte, int zByte, int bound) {
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            FloatVector.fromByteBuffer(SPECIES, first.bytes(), firstByte + step, FloatRegion.ORDER)
                    .sub(FloatVector.fromByteBuffer(SPECIES, second.bytes(), secondByte + step, FloatRegion.ORDER))
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void multiply(FloatRegion first, int firstByte, FloatRegion second, int secondByte, int zByte, int bound) {
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            FloatVector.fromByteBuffer(SPECIES, first.bytes(), firstByte + step, FloatRegion.ORDER)
                    .mul(FloatVector.fromByteBuffer(SPECIES, second.bytes(), secondByte + step, FloatRegion.ORDER))
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void divide(FloatRegion first, int firstByte, FloatRegion second, int secondByte, int zByte, int bound) {
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            FloatVector.fromByteBuffer(SPECIES, first.bytes(), firstByte + step, FloatRegion.ORDER)
                    .div(FloatVector.fromByteBuffer(SPECIES, second.bytes(), secondByte + step, FloatRegion.ORDER))
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void addValue(int aByte, float scalar, int zByte, int bound) {
        FloatVector value = FloatVector.broadcast(SPECIES, scalar);
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            FloatVector.fromByteBuffer(SPECIES, a.bytes(), aByte + step, FloatRegion.ORDER).add(value)
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void subtractFromValue(int aByte, float scalar, int zByte, int bound) {
        FloatVector value = FloatVector.broadcast(SPECIES, scalar);
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            value.sub(FloatVector.fromByteBuffer(SPECIES, a.bytes(), aByte + step, FloatRegion.ORDER))
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void multiplyValue(int aByte, float scalar, int zByte, int bound) {
        FloatVector value = FloatVector.broadcast(SPECIES, scalar);
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            FloatVector.fromByteBuffer(SPECIES, a.bytes(), aByte + step, FloatRegion.ORDER).mul(value)
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void divideByValue(int aByte, float scalar, int zByte, int bound) {
        FloatVector value = FloatVector.broadcast(SPECIES, scalar);
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            FloatVector.fromByteBuffer(SPECIES, a.bytes(), aByte + step, FloatRegion.ORDER).div(value)
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    private void divideValue(int aByte, float scalar, int zByte, int bound) {
        FloatVector value = FloatVector.broadcast(SPECIES, scalar);
        for (int step = 0; step < bound * Float.BYTES; step += SPECIES.vectorByteSize()) {
            value.div(FloatVector.fromByteBuffer(SPECIES, a.bytes(), aByte + step, FloatRegion.ORDER))
                    .intoByteBuffer(z.bytes(), zByte + step, FloatRegion.ORDER);
        }
    }

    /** One element of {@code a ∘ b} (operands swapped back when {@code reversed}). */
    private float scalar(float left, float right) {
        float first = reversed ? right : left;
        float second = reversed ? left : right;
        return switch (operation) {
            case ADD -> first + second;
            case SUBTRACT -> first - second;
            case MULTIPLY -> first * second;
            case DIVIDE -> first / second;
        };
    }
}
