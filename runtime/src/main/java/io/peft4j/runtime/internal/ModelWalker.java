package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.method.ModelNode;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Walks a model's object graph through its fields and names every object it reaches by its field
 * path from the root, with list and array indices and map keys as path segments:
 * {@code encoder.layers.3.attention.query}, the same shape of name as a Hugging Face module path.
 *
 * <p>It descends into the user's own objects, lists, arrays and maps; values of JDK and ND4J types
 * ({@code SDVariable}, {@code INDArray}, {@code SameDiff}, strings, numbers) are reported but not
 * entered. An object reachable by two paths is reported once, under the first.
 */
public final class ModelWalker {

    private final List<ModelNode> nodes = new ArrayList<>();
    private final Set<Object> visited = Collections.newSetFromMap(new IdentityHashMap<>());

    private ModelWalker() {
    }

    /** Every object reachable from {@code root} in depth-first field order, the root itself excluded. */
    public static List<ModelNode> walk(Object root) {
        ModelWalker walker = new ModelWalker();
        walker.visited.add(root);
        walker.enterFields(root, "");
        return walker.nodes;
    }

    private void visit(String path, Field field, Object value) {
        if (value == null || !visited.add(value)) {
            return;
        }
        nodes.add(new ModelNode(path, field, value));
        if (value instanceof List<?> list) {
            for (int i = 0; i < list.size(); i++) {
                visit(path + "." + i, null, list.get(i));
            }
        } else if (value instanceof Object[] array) {
            for (int i = 0; i < array.length; i++) {
                visit(path + "." + i, null, array[i]);
            }
        } else if (value instanceof Map<?, ?> map) {
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                visit(path + "." + entry.getKey(), null, entry.getValue());
            }
        } else if (isUserObject(value)) {
            enterFields(value, path);
        }
    }

    private void enterFields(Object owner, String path) {
        for (Class<?> type = owner.getClass(); type != null && type != Object.class; type = type.getSuperclass()) {
            for (Field field : type.getDeclaredFields()) {
                if (Modifier.isStatic(field.getModifiers()) || field.isSynthetic()) {
                    continue;
                }
                visit(path.isEmpty() ? field.getName() : path + "." + field.getName(), field, read(field, owner, path));
            }
        }
    }

    private static Object read(Field field, Object owner, String path) {
        try {
            field.setAccessible(true);
            return field.get(owner);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new PeftException("Cannot read field '" + field.getName() + "' of " + owner.getClass().getName()
                    + (path.isEmpty() ? "" : " at '" + path + "'") + " while looking for PEFT layers: " + e.getMessage()
                    + "; if the model is in a named module, open its package to io.peft4j.runtime", e);
        }
    }

    /**
     * Whether {@code value} is what PyTorch would call a module: one of the user's own objects, or a
     * list, array or map of them (not a tensor, a graph, a string or a number).
     */
    public static boolean isModule(Object value) {
        return value instanceof List<?> || value instanceof Object[] || value instanceof Map<?, ?> || isUserObject(value);
    }

    private static boolean isUserObject(Object value) {
        Class<?> type = value.getClass();
        if (type.isPrimitive() || type.isArray() || type.isEnum() || type.isRecord() && type.getName().startsWith("java.")) {
            return false;
        }
        String name = type.getName();
        return !(name.startsWith("java.") || name.startsWith("javax.") || name.startsWith("jdk.") || name.startsWith("sun.")
                || name.startsWith("com.sun.") || name.startsWith("org.nd4j.") || name.startsWith("org.bytedeco."));
    }
}
