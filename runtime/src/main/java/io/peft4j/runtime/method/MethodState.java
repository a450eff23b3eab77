package io.peft4j.runtime.method;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What one method saves for one adapter: its tensors under the keys Hugging Face PEFT's
 * {@code get_peft_model_state_dict} produces, and its own entries of {@code adapter_config.json}
 * ({@code r}, {@code num_virtual_tokens}, ...; the checkpoint code adds {@code peft_type},
 * {@code task_type}, {@code base_model_name_or_path}, {@code inference_mode} and
 * {@code modules_to_save}).
 */
public record MethodState(Map<String, INDArray> tensors, ObjectNode config) {
}
