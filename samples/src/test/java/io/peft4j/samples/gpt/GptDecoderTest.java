package io.peft4j.samples.gpt;

import static io.peft4j.samples.gpt.GptGenerator.Decoding.EAGER_CACHE;
import static io.peft4j.samples.gpt.GptGenerator.Decoding.GRAPH_CACHE;
import static io.peft4j.samples.gpt.GptGenerator.Decoding.RECOMPUTE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.agent.PeftAgent;
import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.runtime.AdapterScope;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.prefix.PrefixTuningAdapter;
import io.peft4j.samples.BatchIterator;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * The decoder's contracts on a tiny model: causality, key/value-cache decoding equal to full
 * recomputation (base, LoRA unmerged and merged, prefix and prompt tuning), seeded and switchable
 * generation, refusal of foreign adapters.
 */
class GptDecoderTest {

    private static final GptConfig TINY = new GptConfig(ByteVocabulary.SIZE, 40, 32, 2, 2, 64);
    private static final int[] TEXT = ByteVocabulary.document("Call me Ishmael.".getBytes(StandardCharsets.UTF_8));

    @BeforeAll
    static void installAgent() {
        PeftAgent.install();
    }

    @TempDir
    Path dir;

    @Test
    void changingALaterTokenNeverChangesTheLogitsOfAnEarlierPosition() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 1);
        LanguageModelGraph graph = LanguageModelGraph.build(model, "lm", 12);
        INDArray tokens = Nd4j.createFromArray(new int[][] {Arrays.copyOf(TEXT, 12)});
        INDArray changed = tokens.dup();
        changed.putScalar(0, 7, 'X');

        INDArray before = graph.logits(tokens);
        INDArray after = graph.logits(changed);

        INDArray earlier = NDArrayIndexes.positions(before, 0, 7).sub(NDArrayIndexes.positions(after, 0, 7));
        assertEquals(0.0, earlier.amaxNumber().doubleValue(), 0.0, "positions 0..6 must not see token 7");
        assertTrue(NDArrayIndexes.positions(before, 7, 12).sub(NDArrayIndexes.positions(after, 7, 12)).amaxNumber().doubleValue() > 1e-4,
                "positions 7.. do see it");
    }

    @Test
    void cachedDecodingMatchesFullRecomputationForTheBase() {
        assertCacheMatchesFullRecomputation(new DecoderSession("base", new GptModel(SameDiff.create(), TINY, 2)), 0);
    }

    @Test
    void cachedDecodingMatchesFullRecomputationWithLoraUnmergedAndMerged() {
        GptModel unmergedModel = new GptModel(SameDiff.create(), TINY, 3);
        PeftModel unmerged = withRandomLora(unmergedModel);
        DecoderSession unmergedSession = new DecoderSession("lora", unmergedModel);
        assertCacheMatchesFullRecomputation(unmergedSession, 0);

        GptModel mergedModel = new GptModel(SameDiff.create(), TINY, 3);
        PeftModel merged = withRandomLora(mergedModel);
        merged.merge();
        merged.detach();
        DecoderSession mergedSession = new DecoderSession("lora-merged", mergedModel);
        assertCacheMatchesFullRecomputation(mergedSession, 0);

        float[] base = new DecoderSession("base", new GptModel(SameDiff.create(), TINY, 3)).fullLogits(TEXT);
        float[] adapted = unmergedSession.fullLogits(TEXT);
        assertTrue(maxDifference(base, adapted) > 1e-3, "the LoRA branch changes the logits");
        assertTrue(maxDifference(adapted, mergedSession.fullLogits(TEXT)) < 1e-4, "merged equals unmerged");
    }

    @Test
    void cachedDecodingMatchesFullRecomputationWithPrefixTuning() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 4);
        PeftModel peft = PeftModel.builder(model).only(PrefixTuning.class).attach();
        assertCacheMatchesFullRecomputation(new DecoderSession("prefix", model), PrefixTuningAdapter.of(peft, "default").virtualTokens());
    }

    @Test
    void cachedDecodingMatchesFullRecomputationWithPromptTuning() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 5);
        PeftModel.builder(model).only(PromptTuning.class).attach();
        assertCacheMatchesFullRecomputation(new DecoderSession("prompt", model), 16);
    }

    @Test
    void eagerDecodingMatchesTheGraphForTheBase() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 2);
        assertEagerMatchesGraph(model, new DecoderSession("base", model), 0);
    }

    @Test
    void eagerDecodingMatchesTheGraphWithLoraUnmergedAndMerged() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 3);
        PeftModel peft = withRandomLora(model);
        DecoderSession session = new DecoderSession("lora", model);
        assertEagerMatchesGraph(model, session, 0);
        float[] unmerged = new EagerDecoder(model).feed(TEXT);
        peft.merge();
        assertEagerMatchesGraph(model, session, 0);
        assertTrue(maxDifference(unmerged, new EagerDecoder(model).feed(TEXT)) < 1e-4, "merged equals unmerged");
        try (AdapterScope off = peft.disableAdapters()) {
            peft.unmerge();
            float[] base = new EagerDecoder(model).feed(TEXT);
            assertTrue(maxDifference(base, unmerged) > 1e-3, "the LoRA branch is left out while adapters are disabled");
        }
    }

    @Test
    void eagerDecodingMatchesTheGraphWithPrefixTuning() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 4);
        PeftModel peft = PeftModel.builder(model).only(PrefixTuning.class).attach();
        assertEagerMatchesGraph(model, new DecoderSession("prefix", model), PrefixTuningAdapter.of(peft, "default").virtualTokens());
    }

    @Test
    void eagerDecodingMatchesTheGraphWithPromptTuning() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 5);
        PeftModel.builder(model).only(PromptTuning.class).attach();
        assertEagerMatchesGraph(model, new DecoderSession("prompt", model), 16);
    }

    @Test
    void eagerDecodingMatchesTheGraphWithBottleneckAdapters() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 6);
        withRandomBottleneck(model);
        assertEagerMatchesGraph(model, new DecoderSession("adapter", model), 0);
    }

    @Test
    void aDecoderInASessionGivesThePlainOpCallsLogitsAtEveryStep() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 7);
        withRandomLora(model);
        EagerDecoder session = new EagerDecoder(model);
        EagerDecoder plain = EagerDecoder.withPlainOpCalls(model);
        double worst = maxDifference(session.feed(Arrays.copyOf(TEXT, 4)), plain.feed(Arrays.copyOf(TEXT, 4)));
        for (int t = 4; t < TEXT.length; t++) {
            worst = Math.max(worst, maxDifference(session.feed(TEXT[t]), plain.feed(TEXT[t])));
        }
        assertTrue(worst < 1e-6, "session vs plain op calls: logits differ by " + worst);
    }

    @Test
    void aResetDecoderGivesANewDecodersLogitsForTheNextSequence() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 7);
        withRandomLora(model);
        EagerDecoder reused = new EagerDecoder(model);
        // prompts of 5, then 3 (the caches' arrays kept), then 8 positions (more than they hold: new arrays)
        for (int prompt : new int[] {5, 3, 8}) {
            reused.reset();
            EagerDecoder fresh = new EagerDecoder(model);
            assertArrayEquals(fresh.feed(Arrays.copyOf(TEXT, prompt)), reused.feed(Arrays.copyOf(TEXT, prompt)), "prompt of " + prompt);
            for (int t = prompt; t < prompt + 4; t++) {
                assertArrayEquals(fresh.feed(TEXT[t]), reused.feed(TEXT[t]), "prompt of " + prompt + ", token " + t);
            }
            assertEquals(fresh.positions(), reused.positions());
        }
    }

    @Test
    void decodersOfOneThreadShareTheirStepMemory() {
        GptModel model = new GptModel(SameDiff.create(), TINY, 2);
        new EagerDecoder(model).feed(TEXT);
        int workspaces = Nd4j.getWorkspaceManager().getAllWorkspacesForCurrentThread().size();
        for (int request = 0; request < 5; request++) {
            new EagerDecoder(model).feed(TEXT);
        }
        assertEquals(workspaces, Nd4j.getWorkspaceManager().getAllWorkspacesForCurrentThread().size(),
                "a decoder per request must not leave a workspace behind");
    }

    @Test
    void aSeedFixesTheTextAndSwitchingAdaptersAndBackGivesTheSameText() {
        GptGenerator generator = new GptGenerator(savedBase("base.safetensors", 6));
        generator.addAdapter("lora", saveRandomLora(generator.base(), dir.resolve("lora")), false);
        generator.addAdapter("lora-merged", dir.resolve("lora"), true);
        GptModel prefixModel = generator.base().newModel();
        PeftModel prefix = PeftModel.builder(prefixModel).only(PrefixTuning.class).attach();
        prefix.save(dir.resolve("prefix"), CheckpointOptions.defaults().withBaseModel(generator.base().id()));
        generator.addAdapter("prefix", dir.resolve("prefix"), false);

        byte[] prompt = "Call me".getBytes(StandardCharsets.UTF_8);
        String first = generate(generator, "lora", prompt, EAGER_CACHE);
        assertEquals(first, generate(generator, "lora", prompt, EAGER_CACHE), "same seed, same text");
        String other = generate(generator, "prefix", prompt, EAGER_CACHE);
        String base = generate(generator, "base", prompt, EAGER_CACHE);
        assertEquals(first, generate(generator, "lora", prompt, EAGER_CACHE), "A → B → base → A gives A's text again");
        assertNotEquals(first, other);
        assertNotEquals(first, base);
        assertEquals(first, generate(generator, "lora", prompt, RECOMPUTE), "the cache changes nothing but speed");
        assertEquals(first, generate(generator, "lora-merged", prompt, EAGER_CACHE), "nor does merging");
        assertEquals(List.of("lora", "lora-merged", "prefix"), generator.peft().adapterNames(), "one PeftModel serves every adapter");
        assertEquals(first, generate(generator, "lora", prompt, EAGER_CACHE), "and merging one adapter for its requests leaves the others alone");
    }

    @Test
    void everyDecodingGeneratesTheSameTokensForTheBaseAndEveryKindOfAdapter() {
        GptGenerator generator = new GptGenerator(savedBase("base.safetensors", 10));
        generator.addAdapter("lora", saveRandomLora(generator.base(), dir.resolve("lora")), false);
        generator.addAdapter("lora-merged", dir.resolve("lora"), true);
        GptModel tuned = generator.base().newModel();
        PeftModel.builder(tuned).only(PrefixTuning.class).attach().save(dir.resolve("prefix"),
                CheckpointOptions.defaults().withBaseModel(generator.base().id()));
        generator.addAdapter("prefix", dir.resolve("prefix"), false);
        GptModel prompted = generator.base().newModel();
        PeftModel.builder(prompted).only(PromptTuning.class).attach().save(dir.resolve("prompt"),
                CheckpointOptions.defaults().withBaseModel(generator.base().id()));
        generator.addAdapter("prompt", dir.resolve("prompt"), false);
        generator.addAdapter("adapter", saveRandomBottleneck(generator.base(), dir.resolve("adapter")), false);

        byte[] prompt = "Call me".getBytes(StandardCharsets.UTF_8);
        Map<String, String> texts = new HashMap<>();
        for (String request : generator.requests()) {
            String eager = generate(generator, request, prompt, EAGER_CACHE);
            assertEquals(generate(generator, request, prompt, GRAPH_CACHE), eager, request + ": eager vs the step graph");
            assertEquals(generate(generator, request, prompt, RECOMPUTE), eager, request + ": eager vs recomputing");
            texts.put(request, eager);
        }
        assertEquals(texts.get("lora"), texts.remove("lora-merged"), "merged LoRA generates what unmerged LoRA does");
        assertEquals(5, new HashSet<>(texts.values()).size(), "the base, LoRA, bottleneck, prefix and prompt each generate their own: "
                + texts);
    }

    @Test
    void refusesAnAdapterOfAnotherBaseAndPromptsBeyondTheContext() {
        GptBase base = savedBase("base.safetensors", 7);
        Path adapter = saveRandomLora(base, dir.resolve("lora"));
        GptGenerator other = new GptGenerator(savedBase("other.safetensors", 8));

        IllegalArgumentException foreign = assertThrows(IllegalArgumentException.class, () -> other.addAdapter("lora", adapter, false));
        assertTrue(foreign.getMessage().contains(base.id()) && foreign.getMessage().contains(other.base().id()), foreign.getMessage());

        GptModel wider = new GptModel(SameDiff.create(), new GptConfig(ByteVocabulary.SIZE, 40, 48, 2, 2, 64), 7);
        Path unnamed = PeftModel.builder(wider).only(LoRA.class).attach().save(dir.resolve("wider-lora"));
        IllegalArgumentException misfit = assertThrows(IllegalArgumentException.class, () -> other.addAdapter("wider", unnamed, false));
        assertTrue(misfit.getMessage().contains(unnamed.toString()) && misfit.getMessage().contains(other.base().id()), misfit.getMessage());

        IllegalArgumentException tooLong = assertThrows(IllegalArgumentException.class,
                () -> other.generate("base", new byte[TINY.context()], 4, new Sampler(1, 0, 1, 1), GptGenerator.Decoding.EAGER_CACHE));
        assertTrue(tooLong.getMessage().contains("context window is " + TINY.context()), tooLong.getMessage());

        GptGenerator.Generation fromNothing = other.generate("base", new byte[0], 5, new Sampler(1, 0, 1, 1), GptGenerator.Decoding.EAGER_CACHE);
        assertEquals(1, fromNothing.promptTokens(), "an empty prompt generates from the document start");
    }

    @Test
    void loraLowersHeldOutLossOnATinyCorpus() {
        GptModel base = new GptModel(SameDiff.create(), TINY, 9);
        LanguageModelGraph pretraining = LanguageModelGraph.build(base, "pretrain", 24);
        SameDiffTrainer.fit(base.sameDiff(), pretraining.training(3e-3),
                new BatchIterator(Windows.random(documents("the whale is white and the sea is wide. ", 20), 16 * 30, 24, 1), 16),
                1, quiet());
        GptModel model = new GptModel(SameDiff.create(), TINY, 9);
        model.load(base.parameters());

        PeftModel peft = PeftModel.builder(model).only(LoRA.class).attach();
        LanguageModelGraph graph = LanguageModelGraph.build(model, "adapt", 24);
        DataSet heldOut = Windows.consecutive(documents("we the people, in order to form a union. ", 4), 24, 16);
        double before = graph.bitsPerByte(heldOut, 16);
        peft.train(graph.training(1e-2), new BatchIterator(
                Windows.random(documents("we the people, in order to form a union. ", 20), 16 * 30, 24, 2), 16), 1, quiet());
        double after = graph.bitsPerByte(heldOut, 16);

        System.out.printf("tiny corpus, LoRA: held-out bits per byte %.4f → %.4f%n", before, after);
        assertTrue(after < before - 0.3, "held-out bits per byte " + before + " → " + after);
    }

    private static List<ByteCorpus.Document> documents(String sentence, int repeats) {
        return List.of(new ByteCorpus.Document("tiny", sentence.repeat(repeats).getBytes(StandardCharsets.UTF_8)));
    }

    private static ProgressListener quiet() {
        return new ProgressListener(System.out, 1000);
    }

    private static void assertCacheMatchesFullRecomputation(DecoderSession session, long frontPositions) {
        DecoderSession.Cache cache = session.newCache();
        double worst = 0;
        for (int t = 1; t <= TEXT.length; t++) {
            float[] cached = t == 1 ? cache.feed(TEXT[0]) : cache.feed(TEXT[t - 1]);
            float[] full = session.fullLogits(Arrays.copyOf(TEXT, t));
            worst = Math.max(worst, maxDifference(cached, full));
        }
        assertEquals(frontPositions + TEXT.length, cache.cachedPositions(), "prefixes and prompts are the first cached positions");
        assertTrue(worst < 1e-5, session.name() + ": cached vs full logits differ by " + worst);
    }

    /**
     * Eager decoding of {@link #TEXT} (its first four tokens as the prompt, then one at a time) gives the
     * graph's full-pass logits at every position, and caches {@code frontPositions} in front.
     */
    private static void assertEagerMatchesGraph(GptModel model, DecoderSession graph, long frontPositions) {
        EagerDecoder eager = new EagerDecoder(model);
        double worst = maxDifference(eager.feed(Arrays.copyOf(TEXT, 4)), graph.fullLogits(Arrays.copyOf(TEXT, 4)));
        for (int t = 5; t <= TEXT.length; t++) {
            worst = Math.max(worst, maxDifference(eager.feed(TEXT[t - 1]), graph.fullLogits(Arrays.copyOf(TEXT, t))));
        }
        assertEquals(frontPositions + TEXT.length, eager.cachedPositions(), "prefixes and prompts are the first cached positions");
        assertTrue(worst < 1e-5, graph.name() + ": eager vs graph logits differ by " + worst);
    }

    private static PeftModel withRandomLora(GptModel model) {
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).seed(11).attach();
        org.nd4j.linalg.api.rng.Random random = Nd4j.getRandomFactory().getNewRandomInstance(12);
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.randn(random, b.shape()).castTo(DataType.FLOAT).muli(0.5));
        }
        return peft;
    }

    /**
     * Attaches bottleneck adapters to {@code model} and gives their up projections random values (they
     * start at zero, the identity). The modules are created by the first forward call, here an eager one.
     */
    private static PeftModel withRandomBottleneck(GptModel model) {
        PeftModel peft = PeftModel.builder(model).only(Adapter.class).seed(13).attach();
        new EagerDecoder(model).feed(TEXT[0]);
        org.nd4j.linalg.api.rng.Random random = Nd4j.getRandomFactory().getNewRandomInstance(14);
        List<SDVariable> up = model.sameDiff().variables().stream().filter(variable -> variable.name().contains(".adapter_up.")).toList();
        assertEquals(2 * TINY.layers(), up.size(), "a weight and a bias per block");
        up.forEach(variable -> variable.getArr().assign(Nd4j.randn(random, variable.getArr().shape()).castTo(DataType.FLOAT).muli(0.5)));
        return peft;
    }

    private static Path saveRandomBottleneck(GptBase base, Path to) {
        return withRandomBottleneck(base.newModel()).save(to, CheckpointOptions.defaults().withBaseModel(base.id()));
    }

    private GptBase savedBase(String file, long seed) {
        new GptModel(SameDiff.create(), TINY, seed).save(dir.resolve(file));
        return GptBase.read(dir.resolve(file));
    }

    private static Path saveRandomLora(GptBase base, Path to) {
        PeftModel peft = withRandomLora(base.newModel());
        return peft.save(to, CheckpointOptions.defaults().withBaseModel(base.id()));
    }

    private static String generate(GptGenerator generator, String session, byte[] prompt, GptGenerator.Decoding decoding) {
        return Arrays.toString(generator.generate(session, prompt, 20, new Sampler(1.0, 20, 0.95, 3), decoding).generated());
    }

    private static double maxDifference(float[] a, float[] b) {
        assertEquals(a.length, b.length);
        double worst = 0;
        for (int i = 0; i < a.length; i++) {
            worst = Math.max(worst, Math.abs(a[i] - b[i]));
        }
        return worst;
    }

    /** Position ranges of {@code [batch, T, vocab]} logits. */
    private static final class NDArrayIndexes {
        static INDArray positions(INDArray logits, int from, int to) {
            return logits.get(NDArrayIndex.all(), NDArrayIndex.interval(from, to), NDArrayIndex.all());
        }
    }
}
