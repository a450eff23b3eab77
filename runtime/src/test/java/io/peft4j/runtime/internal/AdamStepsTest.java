package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.SameDiffTrainer;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.AdamUpdater;
import org.nd4j.linalg.learning.SgdUpdater;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.learning.regularization.WeightDecay;

/**
 * Replayed steps update parameters with Adam in peft4j's kernel, bound per variable, and end on
 * libnd4j's bits: training with the kernel and with {@link SameDiffTrainer#OPTIMIZER_KERNELS} off
 * ends on identical parameters. Other updaters, weight decay and maximising keep SameDiff's path.
 */
class AdamStepsTest {
    private static final int WIDTH = 24;

    @Test
    void adamIsBoundPerVariableAndBoundAgainWhenAnArrayIsReplaced() {
        AdamSteps steps = AdamSteps.with(ReplayKernels.forThisProcess());
        INDArray parameter = Nd4j.rand(DataType.FLOAT, WIDTH, WIDTH);
        INDArray gradient = parameter.ulike();
        AdamUpdater adam = adam(parameter);
        TrainingConfig minimise = config(new Adam(1e-3), false);
        var first = steps.stepFor("w", parameter, gradient, adam, minimise);
        assertNotNull(first, "Adam on fp32 arrays");
        assertSame(first, steps.stepFor("w", parameter, gradient, adam, minimise), "bound once");
        assertNotSame(first, steps.stepFor("w", parameter.dup(), gradient, adam, minimise), "a replaced parameter array is bound anew");

        assertNull(steps.stepFor("w", parameter, gradient, new SgdUpdater(new Sgd(0.1)), config(new Sgd(0.1), false)), "another updater");
        TrainingConfig decayed = TrainingConfig.builder().updater(new Adam(1e-3)).weightDecay(1e-2, true).dataSetFeatureMapping("x")
                .dataSetLabelMapping("y").build();
        assertTrue(decayed.getRegularization().get(0) instanceof WeightDecay);
        assertNull(steps.stepFor("w", parameter, gradient, adam, decayed), "weight decay");
        assertNull(steps.stepFor("w", parameter, gradient, adam, config(new Adam(1e-3), true)), "maximising");
        assertNull(RecordedSteps.withProperty(SameDiffTrainer.OPTIMIZER_KERNELS, "false",
                () -> AdamSteps.with(ReplayKernels.forThisProcess())).stepFor("w", parameter, gradient, adam, minimise), "switched off");
    }

    @Test
    void trainingWithTheKernelEndsOnLibnd4jsBits() {
        INDArray[] inKernel = RecordedSteps.withProperty(SameDiffTrainer.OPTIMIZER_KERNELS, "true", AdamStepsTest::train);
        INDArray[] inLibnd4j = RecordedSteps.withProperty(SameDiffTrainer.OPTIMIZER_KERNELS, "false", AdamStepsTest::train);
        for (int i = 0; i < inKernel.length; i++) {
            assertArrayEquals(inLibnd4j[i].data().asFloat(), inKernel[i].data().asFloat(), "parameter " + i);
        }
        assertTrue(inKernel[0].sub(graph().getArrForVarName("w")).amaxNumber().doubleValue() > 1e-3, "training moved the weights");
    }

    private static AdamUpdater adam(INDArray parameter) {
        AdamUpdater adam = new AdamUpdater(new Adam(1e-3));
        adam.setStateViewArray(Nd4j.zeros(DataType.FLOAT, 1, 2 * parameter.length()), parameter.shape(), 'c', true);
        return adam;
    }

    private static TrainingConfig config(org.nd4j.linalg.learning.config.IUpdater updater, boolean maximise) {
        return TrainingConfig.builder().updater(updater).minimize(!maximise).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
    }

    private static INDArray[] train() {
        return RecordedSteps.train(graph(), new long[] {6, WIDTH}, 5, -0.5, 3, 1e-2, "w", "b");
    }

    /** {@code out = tanh(x · w + b)}, {@code loss = mean((out − y)²)}, over {@code x [6, 24]}. */
    private static SameDiff graph() {
        Nd4j.getRandom().setSeed(29);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, WIDTH);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, WIDTH);
        SDVariable w = sd.var("w", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.2));
        SDVariable b = sd.var("b", Nd4j.randn(DataType.FLOAT, WIDTH).muli(0.1));
        SDVariable out = sd.math.tanh(x.mmul(w).add(b)).rename("out");
        sd.math.square(out.sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }
}
