package io.peft4j.runtime;

import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.method.PeftMethod;
import java.util.List;

/**
 * One named adapter of a {@link PeftModel}: its parts (one per PEFT method it uses) and what it trains
 * besides them.
 *
 * @param name      its name ({@code "default"} unless named)
 * @param parts     one per method, e.g. a {@code LoraAdapter}
 * @param alsoTrain the field paths trained and saved with it ({@code modules_to_save})
 * @param taskType  PEFT's {@code task_type}, or {@code null}
 * @param baseModel {@code base_model_name_or_path}, or {@code null}
 */
public record NamedAdapter(String name, List<MethodAdapter> parts, List<String> alsoTrain, String taskType, String baseModel) {

    public NamedAdapter {
        parts = List.copyOf(parts);
        alsoTrain = List.copyOf(alsoTrain);
    }

    /** The methods it uses. */
    public List<PeftMethod> methods() {
        return parts.stream().map(MethodAdapter::method).toList();
    }

    /** Its part of type {@code type} (e.g. {@code LoraAdapter.class}), or {@code null} if it uses no such method. */
    public <T extends MethodAdapter> T part(Class<T> type) {
        return parts.stream().filter(type::isInstance).map(type::cast).findFirst().orElse(null);
    }

    /** Its part of {@code type}; fails with "Adapter 'name' has no {@code what}" and its methods if it has none. */
    public <T extends MethodAdapter> T requirePart(Class<T> type, String what) {
        T part = part(type);
        if (part == null) {
            throw new PeftException("Adapter '" + name + "' has no " + what + "; its methods are " + methods());
        }
        return part;
    }

    /** Trainable parameters of its parts (its trained extra modules not included). */
    public long parameterCount() {
        return parts.stream().mapToLong(MethodAdapter::parameterCount).sum();
    }
}
