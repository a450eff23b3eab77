package io.peft4j.samples.spam;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.agent.PeftAgent;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.samples.minilm.MiniLmTokenizer;
import io.peft4j.samples.minilm.OnnxInitializers;
import java.io.InputStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The spam classifier's LoRA adapter, saved with its classifier head, reproduces the classifier's
 * logits bit for bit when loaded into a fresh all-MiniLM-L6-v2 whose own head was initialised
 * differently: the adapter directory and the pretrained weights alone are the trained model.
 */
class SpamAdapterReloadTest {

    @TempDir
    Path dir;

    @BeforeAll
    static void installAgent() {
        PeftAgent.install();
    }

    @Test
    void theSavedAdapterAndHeadReproduceTheLogitsExactly() throws Exception {
        Map<String, INDArray> pretrained;
        try (InputStream onnx = getClass().getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
            pretrained = OnnxInitializers.read(onnx);
        }
        SpamClassifier trained = new SpamClassifier(SameDiff.create(), pretrained, 42);
        PeftModel peft = PeftModel.builder(trained).only(LoRA.class).alsoTrain("classifier").taskType("SEQ_CLS")
                .baseModel(SpamClassifier.BASE_MODEL).attach();
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(7);
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.randn(random, b.shape()).castTo(b.dataType()).muli(0.05)); // as if trained
        }
        INDArray head = trained.sameDiff().getVariable("classifier.weight").getArr();
        head.assign(Nd4j.randn(random, head.shape()).castTo(head.dataType()));
        SpamGraph graph = new SpamGraph(trained);

        List<Email> emails = new ArrayList<>();
        int id = 0;
        for (String text : List.of("Win a FREE iPhone now!!! Click here to claim your prize.", "Meeting moved to 3pm tomorrow, same room.",
                "Cheap meds online without prescription, discreet shipping worldwide.", "Can you review my pull request?",
                "URGENT: your account has been suspended, verify your identity immediately", "Lunch?")) {
            emails.add(new Email("test/" + id, id++ % 2 == 0, text));
        }
        SpamBatches test;
        try (MiniLmTokenizer tokenizer = new MiniLmTokenizer()) {
            test = new SpamBatches(emails, tokenizer, 32, 4);
        }
        SpamGraph.Evaluation expected = graph.evaluate(test);
        Path saved = peft.save(dir);

        JsonNode config = new ObjectMapper().readTree(saved.resolve("adapter_config.json").toFile());
        assertEquals("[\"query\",\"value\"]", config.get("target_modules").toString(), "selects exactly the 12 projections by their short names");
        assertEquals("[\"classifier\"]", config.get("modules_to_save").toString());
        assertEquals("SEQ_CLS", config.get("task_type").asText());
        assertEquals(SpamClassifier.BASE_MODEL, config.get("base_model_name_or_path").asText());

        ReloadCheck check = ReloadCheck.run(saved, pretrained, 42, test, expected.logits());
        assertEquals(emails.size(), check.predictions());
        assertEquals(emails.size(), check.identical(), check.toString());
        assertEquals(0.0, check.maxLogitDifference(), 0.0, check.toString());
        assertTrue(check.switchMicros() > 0, check.toString());
    }
}
