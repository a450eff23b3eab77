package io.peft4j.runtime.internal;

import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.ForwardContext;
import io.peft4j.runtime.method.MethodConfig;
import io.peft4j.runtime.method.ModelNode;
import java.lang.annotation.Annotation;
import java.util.List;
import java.util.function.Function;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/** The {@link AttachContext} a {@code PeftModel} gives each method when it creates an adapter. */
public final class DefaultAttachContext implements AttachContext {

    private final String adapterName;
    private final int adapterId;
    private final ForwardContext forward;
    private final List<ModelNode> nodes;
    private final Random random;
    private final Integer virtualTokens;
    private final Function<String, int[]> promptTokenizer;
    private final List<MethodConfig> configs;
    private final List<String> alsoTrain;

    public DefaultAttachContext(String adapterName, int adapterId, ForwardContext forward, List<ModelNode> nodes, long seed,
                                Integer virtualTokens, Function<String, int[]> promptTokenizer, List<MethodConfig> configs,
                                List<String> alsoTrain) {
        this.adapterName = adapterName;
        this.adapterId = adapterId;
        this.forward = forward;
        this.nodes = List.copyOf(nodes);
        this.random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        this.virtualTokens = virtualTokens;
        this.promptTokenizer = promptTokenizer;
        this.configs = List.copyOf(configs);
        this.alsoTrain = List.copyOf(alsoTrain);
    }

    @Override
    public <C extends MethodConfig> C config(Class<C> type) {
        return configs.stream().filter(type::isInstance).map(type::cast).findFirst().orElse(null);
    }

    @Override
    public List<String> alsoTrain() {
        return alsoTrain;
    }

    @Override
    public String adapterName() {
        return adapterName;
    }

    @Override
    public int adapterId() {
        return adapterId;
    }

    @Override
    public ForwardContext forward() {
        return forward;
    }

    @Override
    public List<ModelNode> nodes() {
        return nodes;
    }

    @Override
    public <A extends Annotation> A annotationOf(ModelNode node, Class<A> type) {
        A onField = node.field() == null ? null : node.field().getAnnotation(type);
        return onField != null ? onField : node.value().getClass().getAnnotation(type);
    }

    @Override
    public Random random() {
        return random;
    }

    @Override
    public Integer virtualTokens() {
        return virtualTokens;
    }

    @Override
    public Function<String, int[]> promptTokenizer() {
        return promptTokenizer;
    }

    @Override
    public SameDiff graphOf(Object layer) {
        for (ModelNode node : ModelWalker.walk(layer)) {
            if (node.value() instanceof SDVariable variable) {
                return variable.getSameDiff();
            }
        }
        return null;
    }

    @Override
    public String variableName(SameDiff sameDiff, String base) {
        if (!sameDiff.hasVariable(base)) {
            return base;
        }
        for (int suffix = 2; ; suffix++) {
            String candidate = base + "_" + suffix;
            if (!sameDiff.hasVariable(candidate)) {
                return candidate;
            }
        }
    }
}
