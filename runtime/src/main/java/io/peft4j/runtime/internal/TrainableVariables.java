package io.peft4j.runtime.internal;

import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/** A training checkpoint's model part for plain graph training: every trainable variable, bit for bit. */
public final class TrainableVariables implements TrainingCheckpoints.ModelState {

    private static final String FILE = "variables.safetensors";

    private final SameDiff sameDiff;

    public TrainableVariables(SameDiff sameDiff) {
        this.sameDiff = sameDiff;
    }

    @Override
    public void save(Path directory) {
        Map<String, INDArray> variables = new LinkedHashMap<>();
        for (SDVariable variable : sameDiff.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                variables.put(variable.name(), variable.getArr());
            }
        }
        boolean wide = variables.values().stream().anyMatch(array -> array.dataType() == DataType.DOUBLE);
        try {
            Files.createDirectories(directory);
        } catch (IOException e) {
            throw new CheckpointException(directory, "cannot be created: " + e, e);
        }
        SafetensorsFile.write(directory.resolve(FILE), variables, wide ? TensorDtype.F64 : TensorDtype.F32, Map.of("format", "pt"));
    }

    @Override
    public void load(Path directory) {
        Path file = directory.resolve(FILE);
        SafetensorsFile.read(file, true).forEach((name, value) -> {
            if (!sameDiff.hasVariable(name)) {
                throw new CheckpointException(file, "holds '" + name + "', which the graph does not have");
            }
            INDArray live = sameDiff.getVariable(name).getArr();
            live.assign(value.castTo(live.dataType()));
        });
    }
}
