package io.peft4j.samples.gpt;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Next-byte training examples: windows of {@code length + 1} tokens of one document, as features
 * {@code tokens [n, length]} and labels {@code next [n, length]} (INT32, the same window shifted by one).
 * A document is {@code [DOCUMENT_START, bytes...]}, so every label is a byte of the text.
 */
public final class Windows {

    private Windows() {
    }

    /** {@code count} windows at random places, documents drawn in proportion to their length. */
    public static DataSet random(List<ByteCorpus.Document> documents, int count, int length, long seed) {
        List<int[]> tokens = documents.stream().map(document -> ByteVocabulary.document(document.bytes()))
                .filter(ids -> ids.length > length).toList();
        if (tokens.isEmpty()) {
            throw new IllegalArgumentException("no document is longer than " + length + " bytes");
        }
        long[] cumulative = new long[tokens.size()];
        long total = 0;
        for (int i = 0; i < tokens.size(); i++) {
            total += tokens.get(i).length - length;
            cumulative[i] = total;
        }
        Random random = new Random(seed);
        int[][] windows = new int[count][];
        for (int w = 0; w < count; w++) {
            long pick = (long) (random.nextDouble() * total);
            int document = 0;
            while (cumulative[document] <= pick) {
                document++;
            }
            int start = (int) (pick - (document == 0 ? 0 : cumulative[document - 1]));
            windows[w] = Arrays.copyOfRange(tokens.get(document), start, start + length + 1);
        }
        return toDataSet(windows, length);
    }

    /**
     * Consecutive windows through each document from its start (its last partial window dropped),
     * at most {@code limit}, taken evenly across the documents: the held-out set.
     */
    public static DataSet consecutive(List<ByteCorpus.Document> documents, int length, int limit) {
        List<int[]> all = new ArrayList<>();
        for (ByteCorpus.Document document : documents) {
            int[] ids = ByteVocabulary.document(document.bytes());
            for (int start = 0; start + length + 1 <= ids.length; start += length) {
                all.add(Arrays.copyOfRange(ids, start, start + length + 1));
            }
        }
        int kept = Math.min(limit, all.size());
        int[][] windows = new int[kept][];
        for (int i = 0; i < kept; i++) {
            windows[i] = all.get((int) ((long) i * all.size() / kept));
        }
        return toDataSet(windows, length);
    }

    private static DataSet toDataSet(int[][] windows, int length) {
        int[][] inputs = new int[windows.length][];
        int[][] targets = new int[windows.length][];
        for (int i = 0; i < windows.length; i++) {
            inputs[i] = Arrays.copyOfRange(windows[i], 0, length);
            targets[i] = Arrays.copyOfRange(windows[i], 1, length + 1);
        }
        return new DataSet(Nd4j.createFromArray(inputs).castTo(DataType.INT32), Nd4j.createFromArray(targets).castTo(DataType.INT32));
    }
}
