package io.peft4j.runtime.ia3;

import io.peft4j.annotations.IA3;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.internal.LayerTargeting;
import io.peft4j.runtime.internal.ModelWalker;
import io.peft4j.runtime.internal.ReflectiveWeightAccessor;
import io.peft4j.runtime.internal.WeightAccessors;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.PeftMethod;
import io.peft4j.runtime.spi.WeightAccessor;
import java.lang.annotation.Annotation;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;

/**
 * (IA)³ (Liu et al., 2022) as Hugging Face PEFT implements it: a learned vector, initialised to ones,
 * that rescales a layer's output ({@code y ⊙ l}) or, for the layers named feed-forward, its input
 * ({@code base(x ⊙ l)}); mergeable into the weight. Declared with {@code @IA3} or selected with
 * {@link Ia3Config}; {@code peft_type} {@code IA3}.
 */
public final class Ia3Method implements PeftMethod {

    @Override
    public String name() {
        return "ia3";
    }

    @Override
    public Class<? extends Annotation> annotation() {
        return IA3.class;
    }

    @Override
    public String peftType() {
        return "IA3";
    }

    @Override
    public MethodAdapter attach(AttachContext context) {
        Ia3Config config = context.config(Ia3Config.class);
        LayerTargeting byName = config == null ? null : LayerTargeting.of("Ia3Config", "(IA)³", config.selection(),
                config.layoutOfUnannotatedWeights(), context.nodes(), context.alsoTrain(), "the model");
        Map<String, LayerTargeting.Target> named = byName == null ? Map.of() : byName.targets();
        Parts parts = new Parts();
        try {
            for (ModelNode node : context.nodes()) {
                LayerTargeting.Target target = named.get(node.path());
                if (target != null) {
                    parts.add(context, node, target.accessor(), config.isFeedforward(node.path()));
                    continue;
                }
                IA3 annotation = context.annotationOf(node, IA3.class);
                if (annotation == null || byName != null && byName.excludes(node.path())) {
                    continue;
                }
                parts.add(context, node, WeightAccessors.forLayer(node.value().getClass(), node.path(), "@IA3"), annotation.feedforward());
            }
        } catch (RuntimeException e) {
            parts.rollBack();
            throw e;
        }
        return parts.vectors.isEmpty() ? null : parts.adapter(this, context);
    }

    @Override
    public MethodAdapter restore(AttachContext context, SavedAdapter saved) {
        Ia3Config config = Ia3Config.read(saved.reader(), saved.modulesToSave());
        Parts parts = new Parts();
        List<String> candidates = new ArrayList<>();
        try {
            for (ModelNode node : context.nodes()) {
                if (!ModelWalker.isModule(node.value())) {
                    continue;
                }
                Optional<WeightAccessor<Object>> accessor = LayerTargeting.accessorOf(node.value(), WeightLayout.IN_OUT);
                if (accessor.isEmpty()) {
                    continue;
                }
                String module = saved.keys().module(node.path());
                candidates.add(module);
                if (config.selection().selects(module)) {
                    if (accessor.get() instanceof ReflectiveWeightAccessor reflective) {
                        reflective.announce();
                    }
                    parts.add(context, node, accessor.get(), config.isFeedforward(module));
                }
            }
        } catch (RuntimeException e) {
            parts.rollBack();
            throw e;
        }
        if (parts.vectors.isEmpty()) {
            throw new CheckpointException(saved.configFile(), "target_modules " + config.selection().describeTargets() + " selects no layer "
                    + "of the model; the layers (IA)³ can adapt (a forward method and one matrix weight) are " + candidates);
        }
        return parts.adapter(this, context);
    }

    /** The vectors and sites created so far, so that a failure half-way leaves no vector on any layer. */
    private static final class Parts {
        final Map<String, Ia3Vector> vectors = new LinkedHashMap<>();
        final Map<String, Ia3Site> sites = new LinkedHashMap<>();

        void add(AttachContext context, ModelNode node, WeightAccessor<Object> accessor, boolean feedforward) {
            Ia3Site site = Ia3Site.on(node.value(), node.path(), accessor, context.forward());
            try {
                Ia3Vector vector = new Ia3Vector(context, sameDiffOf(site), node.path(), feedforward,
                        feedforward ? site.in() : site.out(), site.dtype());
                site.add(vector);
                vectors.put(node.path(), vector);
                sites.put(node.path(), site);
            } catch (RuntimeException e) {
                site.unregisterIfEmpty();
                throw e;
            }
        }

        /** The weight's graph; {@code null} for an eager layer, whose vector is then an INDArray. */
        private static SameDiff sameDiffOf(Ia3Site site) {
            return site.weight() instanceof SDVariable variable ? variable.getSameDiff() : null;
        }

        void rollBack() {
            vectors.forEach((path, vector) -> sites.get(path).remove(vector));
        }

        Ia3Adapter adapter(PeftMethod method, AttachContext context) {
            List<String> modules = context.nodes().stream().filter(node -> ModelWalker.isModule(node.value())).map(ModelNode::path).toList();
            return new Ia3Adapter(method, context.adapterName(), vectors, sites, modules);
        }
    }
}
