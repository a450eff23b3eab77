package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.runtime.training.ListBatches;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.random.custom.DistributionUniform;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/**
 * Replayed training steps compute what SameDiff's own steps compute, bit for bit: the same losses
 * (with the weight-decay term SameDiff reports), the same parameters after three epochs whose last
 * batch is shorter (so a second recording and SameDiff's own steps take turns), the same listener
 * calls; a random custom op (LoRA's dropout mask) draws in a replay what it draws in SameDiff, with the
 * seeder; a graph with a legacy random op trains in SameDiff throughout.
 */
class RecordedTrainingTest {
    private static final int SEQUENCE = 3;
    private static final int WIDTH = 4;

    @Test
    void replayedStepsEqualSameDiffsOwn() {
        Run plain = train(false, false);
        Run replayed = train(true, false);

        assertArrayEquals(plain.report().losses(), replayed.report().losses(), 0.0);
        assertEquals(0.0, plain.weights().sub(replayed.weights()).amaxNumber().doubleValue(), 0.0);
        assertEquals(plain.calls(), replayed.calls(), "listener calls, in order");
        assertEquals(9, replayed.report().losses().length);
    }

    @Test
    void replaysEveryStepButTheFirstTwoOfEachBatchShape() {
        SameDiff sd = graph(false);
        prepare(sd);
        int replayed = RecordedTraining.fit(sd, data(), 3);
        assertEquals(5, replayed, "9 steps: each shape's first two (the second recorded) run in SameDiff");

        SameDiff own = graph(false);
        prepare(own);
        own.fit(data(), 3);
        for (String name : new String[] {"w1", "w2"}) {
            assertEquals(0.0, own.getArrForVarName(name).sub(sd.getArrForVarName(name)).amaxNumber().doubleValue(), 0.0,
                    name + " after SameDiff.fit and after replay, no listeners");
        }
    }

    @Test
    void aRandomCustomOpIsReplayedSeededAsInSameDiff() {
        Run plain = trainWithUniformMask(false);
        Run replayed = trainWithUniformMask(true);
        assertArrayEquals(plain.report().losses(), replayed.report().losses(), 0.0);
        assertEquals(0.0, plain.weights().sub(replayed.weights()).amaxNumber().doubleValue(), 0.0);

        SameDiff sd = uniformMaskGraph();
        prepare(sd);
        assertEquals(5, RecordedTraining.fit(sd, data(), 3, new RandomOpSeeder()));
        SameDiff unseeded = uniformMaskGraph();
        prepare(unseeded);
        assertEquals(0, RecordedTraining.fit(unseeded, data(), 3), "without the seeder a replay could not draw as SameDiff does");
    }

    private static Run trainWithUniformMask(boolean recorded) {
        SameDiff sd = uniformMaskGraph();
        String previous = System.getProperty(SameDiffTrainer.RECORDED_STEPS);
        System.setProperty(SameDiffTrainer.RECORDED_STEPS, Boolean.toString(recorded));
        try {
            Nd4j.getRandom().setSeed(123);
            TrainingReport report = SameDiffTrainer.fit(sd, config(), data(), 3, new ProgressListener(null, 1));
            return new Run(report, Nd4j.concat(0, sd.getArrForVarName("w1"), sd.getArrForVarName("w2")), List.of());
        } finally {
            if (previous == null) {
                System.clearProperty(SameDiffTrainer.RECORDED_STEPS);
            } else {
                System.setProperty(SameDiffTrainer.RECORDED_STEPS, previous);
            }
        }
    }

    /** Placeholders {@code x, y [batch, sequence, d]} and trainable {@code w1, w2 [d, d]} of a new graph. */
    private record Inputs(SameDiff sd, SDVariable x, SDVariable y, SDVariable w1, SDVariable w2) {
    }

    private static Inputs inputs(long seed) {
        Nd4j.getRandom().setSeed(seed);
        SameDiff sd = SameDiff.create();
        return new Inputs(sd, sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH), sd.placeHolder("y", DataType.DOUBLE, -1, SEQUENCE, WIDTH),
                sd.var("w1", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5)), sd.var("w2", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5)));
    }

    /** {@code loss = mean(((x ⊙ mask) · w1 · w2 − y)²)}, the mask drawn as LoRA's dropout draws it (uniform ≥ 0.3, scaled). */
    private static SameDiff uniformMaskGraph() {
        Inputs in = inputs(99);
        SameDiff sd = in.sd();
        SDVariable flat = sd.reshape(in.x(), -1, WIDTH);
        SDVariable uniform = new DistributionUniform(sd, flat.shape(), 0.0, 1.0, DataType.DOUBLE).outputVariable();
        SDVariable dropped = flat.mul(uniform.gte(0.3).castTo(DataType.DOUBLE).div(0.7));
        sd.math.square(sd.reshape(dropped.mmul(in.w1()).mmul(in.w2()), -1, SEQUENCE, WIDTH).sub(in.y())).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    @Test
    void aGraphWithALegacyRandomOpIsNeverReplayed() {
        SameDiff sd = graph(true);
        prepare(sd);
        assertEquals(0, RecordedTraining.fit(sd, data(), 2));
    }

    private record Run(TrainingReport report, INDArray weights, List<String> calls) {
    }

    private static Run train(boolean recorded, boolean dropout) {
        SameDiff sd = graph(dropout);
        CallLog log = new CallLog();
        sd.addListeners(log);
        String previous = System.getProperty(SameDiffTrainer.RECORDED_STEPS);
        System.setProperty(SameDiffTrainer.RECORDED_STEPS, Boolean.toString(recorded));
        try {
            TrainingReport report = SameDiffTrainer.fit(sd, config(), data(), 3, new ProgressListener(null, 1));
            return new Run(report, Nd4j.concat(0, sd.getArrForVarName("w1"), sd.getArrForVarName("w2").reshape(-1, WIDTH)), log.calls);
        } finally {
            if (previous == null) {
                System.clearProperty(SameDiffTrainer.RECORDED_STEPS);
            } else {
                System.setProperty(SameDiffTrainer.RECORDED_STEPS, previous);
            }
        }
    }

    private static void prepare(SameDiff sd) {
        sd.setTrainingConfig(config());
        TrainingCheckpoints.createUpdaters(sd);
    }

    private static TrainingConfig config() {
        return TrainingConfig.builder().updater(new Adam(1e-2)).weightDecay(1e-2, true).dataSetFeatureMapping("x")
                .dataSetLabelMapping("y").build();
    }

    /** Three batches of 4, 4 and 2 sequences. */
    private static MultiDataSetIterator data() {
        Nd4j.getRandom().setSeed(7);
        List<org.nd4j.linalg.dataset.api.MultiDataSet> batches = new ArrayList<>();
        for (int size : new int[] {4, 4, 2}) {
            INDArray x = Nd4j.rand(DataType.DOUBLE, size, SEQUENCE, WIDTH).subi(0.5);
            batches.add(new MultiDataSet(x, x.mul(0.5)));
        }
        return new ListBatches(batches);
    }

    /**
     * {@code loss = Σ (LayerNorm(gelu(x · w1) · frozen) ⊙ softmax(x · w2) − y)²}: products, a frozen
     * weight, a LayerNorm written out, a softmax and ND4J's gelu, optionally with a random mask.
     */
    private static SameDiff graph(boolean dropout) {
        Inputs in = inputs(11);
        SameDiff sd = in.sd();
        SDVariable x = in.x();
        SDVariable y = in.y();
        SDVariable w1 = in.w1();
        SDVariable w2 = in.w2();
        SDVariable frozen = sd.constant("frozen", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable flat = sd.reshape(x, -1, WIDTH);
        SDVariable hidden = sd.nn.gelu(flat.mmul(w1)).mmul(frozen);
        if (dropout) {
            // a mask drawn anew every step (ND4J's dropout op has no gradient in M2.1)
            hidden = hidden.mul(sd.random.bernoulli(0.9, DataType.DOUBLE, WIDTH));
        }
        // range lives among ND4J's random ops but is not one (BERT-style models use it for positions)
        SDVariable shaped = sd.reshape(hidden, -1, SEQUENCE, WIDTH).add(sd.range(0.0, WIDTH, 1.0, DataType.DOUBLE).mul(0.01));
        SDVariable centred = shaped.sub(shaped.mean(true, 2));
        SDVariable normalised = centred.div(sd.math.sqrt(centred.mul(centred).mean(true, 2).add(1e-5)));
        SDVariable weights = sd.nn.softmax(sd.reshape(flat.mmul(w2), -1, SEQUENCE, WIDTH), 2);
        sd.math.square(normalised.mul(weights).sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    /** Every training listener call with its iteration and epoch. */
    private static final class CallLog extends BaseListener {
        final List<String> calls = new ArrayList<>();

        @Override
        public boolean isActive(Operation operation) {
            return operation == Operation.TRAINING;
        }

        @Override
        public void epochStart(SameDiff sd, At at) {
            calls.add("epochStart " + at.epoch());
        }

        @Override
        public void iterationStart(SameDiff sd, At at, org.nd4j.linalg.dataset.api.MultiDataSet data, long etlMs) {
            calls.add("iterationStart " + at.epoch() + "/" + at.iteration());
        }

        @Override
        public void preUpdate(SameDiff sd, At at, org.nd4j.autodiff.samediff.internal.Variable variable, INDArray update) {
            calls.add("preUpdate " + variable.getName() + " " + at.iteration());
        }

        @Override
        public void iterationDone(SameDiff sd, At at, org.nd4j.linalg.dataset.api.MultiDataSet dataSet, Loss loss) {
            calls.add("iterationDone " + at.epoch() + "/" + at.iteration() + " " + loss.getLossNames() + " " + java.util.Arrays.toString(loss.getLosses()));
        }

        @Override
        public org.nd4j.autodiff.listeners.ListenerResponse epochEnd(SameDiff sd, At at, org.nd4j.autodiff.listeners.records.LossCurve lossCurve,
                                                                     long epochTimeMillis) {
            calls.add("epochEnd " + at.epoch());
            return org.nd4j.autodiff.listeners.ListenerResponse.CONTINUE;
        }
    }
}
