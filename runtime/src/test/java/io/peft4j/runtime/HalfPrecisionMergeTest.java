package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/** Merging into an F16 or BF16 base computes in fp32 and rounds once; unmerging comes back to within one rounding. */
class HalfPrecisionMergeTest {

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    @Test
    void halfPrecisionBasesMergeInFp32AndRoundOnce() {
        for (DataType dtype : new DataType[] {DataType.HALF, DataType.BFLOAT16}) {
            TwoLayerModel model = new TwoLayerModel(dtype, 1);
            PeftModel peft = PeftModel.attach(model);
            LoraLayer layer = LoraAdapter.of(peft).layer("blocks.1");
            layer.weights().b().assign(Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(2), layer.weights().b().shape())
                    .castTo(dtype).subi(0.5));
            INDArray original = model.blocks().get(1).weight().getArr().dup();
            INDArray delta = layer.weights().a().castTo(DataType.FLOAT).mmul(layer.weights().b().castTo(DataType.FLOAT))
                    .muli(layer.weights().scaling());
            INDArray roundedOnce = original.castTo(DataType.FLOAT).add(delta).castTo(dtype);

            peft.merge();
            INDArray merged = model.blocks().get(1).weight().getArr().dup();
            assertEquals(dtype, merged.dataType());
            assertArrayEquals(roundedOnce.castTo(DataType.FLOAT).data().asFloat(), merged.castTo(DataType.FLOAT).data().asFloat(), 0f,
                    dtype + ": W + s·A·B in fp32, rounded to " + dtype + " once");

            peft.unmerge();
            INDArray restored = model.blocks().get(1).weight().getArr().castTo(DataType.FLOAT);
            double error = Transforms.abs(restored.sub(original.castTo(DataType.FLOAT))).maxNumber().doubleValue();
            double scale = Transforms.abs(original.castTo(DataType.FLOAT)).maxNumber().doubleValue();
            double epsilon = dtype == DataType.HALF ? Math.pow(2, -10) : Math.pow(2, -7);
            System.out.printf("%s merge → unmerge: max |ΔW| = %.3e (%.2f %s epsilons of max |W| = %.3f; fp32 would be ~%.1e)%n", dtype, error,
                    error / (epsilon * scale), dtype, scale, Math.pow(2, -23) * scale);
            assertTrue(error <= epsilon * scale, dtype + ": unmerge lands within one rounding of the original, got " + error);
        }
    }
}
