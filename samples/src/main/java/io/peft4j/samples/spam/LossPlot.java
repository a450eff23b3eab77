package io.peft4j.samples.spam;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import javax.imageio.ImageIO;

/** A PNG line chart of training-loss curves, one per method, loss against step. */
final class LossPlot {

    private static final Color[] COLORS = {new Color(0x1f77b4), new Color(0xff7f0e), new Color(0x2ca02c), new Color(0xd62728),
            new Color(0x9467bd), new Color(0x8c564b), new Color(0xe377c2)};
    private static final int WIDTH = 900;
    private static final int HEIGHT = 520;
    private static final int MARGIN = 60;

    private LossPlot() {
    }

    static void write(Path file, Map<String, double[]> curves) throws IOException {
        System.setProperty("java.awt.headless", "true");
        BufferedImage image = new BufferedImage(WIDTH, HEIGHT, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = image.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, WIDTH, HEIGHT);
        int steps = curves.values().stream().mapToInt(curve -> curve.length).max().orElse(1);
        double maxLoss = curves.values().stream().flatMapToDouble(java.util.Arrays::stream).filter(Double::isFinite).max().orElse(1);
        g.setColor(Color.DARK_GRAY);
        g.drawLine(MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN);
        g.drawLine(MARGIN, MARGIN, MARGIN, HEIGHT - MARGIN);
        g.setFont(new Font(Font.SANS_SERIF, Font.PLAIN, 12));
        g.drawString("training step", WIDTH / 2 - 40, HEIGHT - 20);
        g.drawString("loss", 15, MARGIN - 10);
        g.drawString(String.format(Locale.ROOT, "%.2f", maxLoss), 15, MARGIN + 5);
        g.drawString("0", 40, HEIGHT - MARGIN + 5);
        g.drawString(String.valueOf(steps), WIDTH - MARGIN - 10, HEIGHT - MARGIN + 20);
        int index = 0;
        for (Map.Entry<String, double[]> curve : curves.entrySet()) {
            Color color = COLORS[index % COLORS.length];
            g.setColor(color);
            g.setStroke(new BasicStroke(2f));
            double[] losses = curve.getValue();
            for (int step = 1; step < losses.length; step++) {
                g.drawLine(x(step - 1, steps), y(losses[step - 1], maxLoss), x(step, steps), y(losses[step], maxLoss));
            }
            g.fillRect(WIDTH - MARGIN - 150, MARGIN + 18 * index, 12, 12);
            g.setColor(Color.BLACK);
            g.drawString(curve.getKey(), WIDTH - MARGIN - 132, MARGIN + 11 + 18 * index);
            index++;
        }
        g.dispose();
        ImageIO.write(image, "png", file.toFile());
    }

    private static int x(int step, int steps) {
        return MARGIN + (int) Math.round((double) step / Math.max(1, steps - 1) * (WIDTH - 2 * MARGIN));
    }

    private static int y(double loss, double maxLoss) {
        double clipped = Double.isFinite(loss) ? Math.min(loss, maxLoss) : maxLoss;
        return HEIGHT - MARGIN - (int) Math.round(clipped / maxLoss * (HEIGHT - 2 * MARGIN));
    }
}
