package io.peft4j.runtime.method;

import java.lang.annotation.Annotation;
import java.util.List;
import java.util.function.Function;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/**
 * What a {@link PeftMethod} is given to create its part of one named adapter on a model.
 */
public interface AttachContext {

    /** The adapter's name ({@code "default"} unless the user named it). */
    String adapterName();

    /** A number that identifies the adapter in mixed-batch graphs; unique within its {@code PeftModel}. */
    int adapterId();

    /** The owning model's state, for the forward extensions the method registers. */
    ForwardContext forward();

    /** Every object reachable from the model's root, in depth-first field order. */
    List<ModelNode> nodes();

    /** The annotation of {@code type} on the node's field, else on its class, else {@code null}. */
    <A extends Annotation> A annotationOf(ModelNode node, Class<A> type);

    /**
     * The config of type {@code type} the user gave for this adapter (layers selected by name), or
     * {@code null}: then only annotations select layers.
     */
    <C extends MethodConfig> C config(Class<C> type);

    /** The field paths trained and saved whole with the adapter (PEFT's {@code modules_to_save}); never targets. */
    List<String> alsoTrain();

    /** The random source of this adapter's initialisations (seeded by the user's choice). */
    Random random();

    /** The user's override of prompt and prefix lengths, or {@code null}. */
    Integer virtualTokens();

    /** Text to token ids, for prompt initialisation from text, or {@code null}. */
    Function<String, int[]> promptTokenizer();

    /** The SameDiff that holds {@code layer}'s {@code SDVariable} fields, or {@code null} if it holds none. */
    SameDiff graphOf(Object layer);

    /**
     * {@code base}, or {@code base} with a suffix if {@code sameDiff} already has a variable of that name
     * (a deleted adapter's variables stay in graphs built with them).
     */
    String variableName(SameDiff sameDiff, String base);
}
