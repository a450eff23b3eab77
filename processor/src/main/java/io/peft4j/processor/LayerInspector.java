package io.peft4j.processor;

import com.squareup.javapoet.ClassName;
import io.peft4j.annotations.Forward;
import io.peft4j.annotations.Weight;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import javax.lang.model.element.Element;
import javax.lang.model.element.ElementKind;
import javax.lang.model.element.ExecutableElement;
import javax.lang.model.element.Modifier;
import javax.lang.model.element.NestingKind;
import javax.lang.model.element.TypeElement;
import javax.lang.model.element.VariableElement;
import javax.lang.model.util.ElementFilter;

/**
 * Decides whether a class is a layer that LoRA can adapt: a non-private class with exactly one
 * non-private, non-static {@code @Weight} field of type {@code SDVariable} or {@code INDArray}, and
 * exactly one forward method (the one marked {@code @Forward}, else the single public method named
 * {@code forward}) that takes the layer input as its first parameter.
 */
final class LayerInspector {

    /** A reason the class is not adaptable, and the element it is about. */
    record Problem(Element element, String message) {
    }

    /** Either a layer class or the problems that stop it from being one. */
    record Inspection(LayerClass layer, List<Problem> problems) {
        boolean isLayer() {
            return problems.isEmpty();
        }
    }

    private static final String SD_VARIABLE = "org.nd4j.autodiff.samediff.SDVariable";
    private static final String ND_ARRAY = "org.nd4j.linalg.api.ndarray.INDArray";
    static final Set<String> WEIGHT_TYPES = Set.of(SD_VARIABLE, ND_ARRAY);

    /** Whether {@code type} is a block a bottleneck adapter can follow: a class with one forward method. */
    List<Problem> inspectBlock(TypeElement type) {
        List<Problem> problems = new ArrayList<>();
        if (type.getKind() != ElementKind.CLASS) {
            problems.add(new Problem(type, type.getSimpleName() + " is " + article(type.getKind()) + ", not a class"));
            return problems;
        }
        singleForwardMethod(type, problems);
        return problems;
    }

    Inspection inspect(TypeElement type) {
        List<Problem> problems = new ArrayList<>();
        String name = type.getSimpleName().toString();
        if (type.getKind() != ElementKind.CLASS) {
            problems.add(new Problem(type, name + " is " + article(type.getKind()) + ", not a class"));
            return new Inspection(null, problems);
        }
        if (type.getModifiers().contains(Modifier.PRIVATE)) {
            problems.add(new Problem(type, name + " must not be private: the generated " + accessorName(type).simpleName()
                    + " in the same package reads its weight"));
        }
        if (type.getNestingKind() == NestingKind.MEMBER && !type.getModifiers().contains(Modifier.STATIC)) {
            problems.add(new Problem(type, name + " must be a static nested class to be an adapted layer"));
        }
        VariableElement weight = singleWeightField(type, problems);
        ExecutableElement forward = singleForwardMethod(type, problems);
        if (!problems.isEmpty()) {
            return new Inspection(null, problems);
        }
        return new Inspection(new LayerClass(type, weight, weight.getAnnotation(Weight.class).layout(), forward,
                accessorName(type)), problems);
    }

    private VariableElement singleWeightField(TypeElement type, List<Problem> problems) {
        List<VariableElement> weights = ElementFilter.fieldsIn(type.getEnclosedElements()).stream()
                .filter(field -> field.getAnnotation(Weight.class) != null).toList();
        String name = type.getSimpleName().toString();
        if (weights.isEmpty()) {
            problems.add(new Problem(type, name + " has no @Weight field: mark the weight matrix that LoRA or (IA)³ adapts with @Weight"));
            return null;
        }
        if (weights.size() > 1) {
            String names = weights.stream().map(field -> field.getSimpleName().toString()).collect(Collectors.joining(", "));
            for (VariableElement extra : weights.subList(1, weights.size())) {
                problems.add(new Problem(extra, name + " has " + weights.size() + " @Weight fields (" + names
                        + "): mark exactly one, the matrix that LoRA adapts"));
            }
            return null;
        }
        VariableElement weight = weights.get(0);
        String field = "@Weight field '" + weight.getSimpleName() + "'";
        if (weight.getModifiers().contains(Modifier.PRIVATE)) {
            problems.add(new Problem(weight, field + " must not be private: the generated "
                    + accessorName(type).simpleName() + " reads and merges it directly; make it package-private"));
        }
        if (weight.getModifiers().contains(Modifier.STATIC)) {
            problems.add(new Problem(weight, field + " must not be static: each layer instance has its own weight"));
        }
        if (!WEIGHT_TYPES.contains(weight.asType().toString())) {
            problems.add(new Problem(weight, field + " has type " + weight.asType()
                    + ": it must be an org.nd4j.autodiff.samediff.SDVariable or an org.nd4j.linalg.api.ndarray.INDArray"));
        }
        return weight;
    }

    private ExecutableElement singleForwardMethod(TypeElement type, List<Problem> problems) {
        List<ExecutableElement> methods = ElementFilter.methodsIn(type.getEnclosedElements());
        List<ExecutableElement> marked = methods.stream().filter(method -> method.getAnnotation(Forward.class) != null).toList();
        List<ExecutableElement> candidates = !marked.isEmpty() ? marked : methods.stream()
                .filter(method -> method.getSimpleName().contentEquals("forward"))
                .filter(method -> method.getModifiers().contains(Modifier.PUBLIC))
                .filter(method -> !method.getModifiers().contains(Modifier.STATIC))
                .toList();
        String name = type.getSimpleName().toString();
        if (candidates.isEmpty()) {
            problems.add(new Problem(type, name + " has no forward method: declare one public method named forward, "
                    + "or mark the method that computes the layer's output with @Forward"));
            return null;
        }
        if (candidates.size() > 1 && !isGraphAndEagerPair(candidates)) {
            String signatures = candidates.stream().map(ExecutableElement::toString).collect(Collectors.joining(", "));
            problems.add(new Problem(candidates.get(1), name + " has " + candidates.size() + " forward method candidates ("
                    + signatures + "): mark the one to adapt with @Forward (a layer may have two: one that builds the graph "
                    + "from an SDVariable and its eager twin on an INDArray)"));
            return null;
        }
        // Of a graph/eager pair, the graph form stands for the layer; the agent wraps both.
        ExecutableElement forward = candidates.stream().filter(method -> firstParameterIs(method, SD_VARIABLE)).findFirst()
                .orElse(candidates.get(0));
        if (forward.getParameters().isEmpty()) {
            problems.add(new Problem(forward, "Forward method " + forward + " of " + name
                    + " takes no parameter: its first parameter must be the layer input"));
        }
        if (forward.getModifiers().contains(Modifier.STATIC) || forward.getModifiers().contains(Modifier.ABSTRACT)) {
            problems.add(new Problem(forward, "Forward method " + forward + " of " + name
                    + " must be a concrete instance method"));
        }
        return forward;
    }

    /**
     * Whether {@code candidates} are one forward that builds a graph (its input an {@code SDVariable})
     * and one that computes eagerly (an {@code INDArray}) with as many parameters: the same layer in
     * its two modes, as a model that trains with SameDiff and decodes without a graph has.
     */
    private static boolean isGraphAndEagerPair(List<ExecutableElement> candidates) {
        if (candidates.size() != 2 || candidates.get(0).getParameters().size() != candidates.get(1).getParameters().size()) {
            return false;
        }
        return firstParameterIs(candidates.get(0), SD_VARIABLE) && firstParameterIs(candidates.get(1), ND_ARRAY)
                || firstParameterIs(candidates.get(0), ND_ARRAY) && firstParameterIs(candidates.get(1), SD_VARIABLE);
    }

    private static boolean firstParameterIs(ExecutableElement method, String type) {
        return !method.getParameters().isEmpty() && method.getParameters().get(0).asType().toString().equals(type);
    }

    static ClassName accessorName(TypeElement type) {
        ClassName layer = ClassName.get(type);
        return ClassName.get(layer.packageName(), String.join("_", layer.simpleNames()) + "_LoRA");
    }

    private static String article(ElementKind kind) {
        String word = kind.name().toLowerCase().replace('_', ' ');
        return ("aeiou".indexOf(word.charAt(0)) >= 0 ? "an " : "a ") + word;
    }
}
