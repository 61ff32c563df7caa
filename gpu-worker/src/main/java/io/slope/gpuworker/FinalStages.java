package io.slope.gpuworker;

import io.slope.activities.pipeline.ExportManifest;
import io.slope.activities.pipeline.PipelineActivitiesImpl;
import io.slope.catalogue.RunCatalogue;
import io.slope.engine.checkpoint.DurableFiles;
import io.slope.engine.checkpoint.NamedTensor;
import io.slope.engine.checkpoint.Safetensors;
import io.slope.engine.export.HfExport;
import io.slope.engine.export.SlopeExport;
import io.slope.engine.merge.Merge;
import io.slope.engine.model.GptModel;
import io.slope.engine.run.TrainingSession;
import io.slope.spec.pipeline.Stage;
import io.slope.spec.pipeline.StageResult;
import io.slope.storage.ObjectStore;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;

/**
 * What merge, eval and export make of a model trained to the end and its final evaluation: the dense export's upload,
 * the evaluation rows in the catalogue, and the hf/ and slope/ exports uploaded with their manifest.
 */
final class FinalStages {
    private final ObjectStore objects;
    private final RunCatalogue catalogue;
    private final Path scratchDir;

    FinalStages(ObjectStore objects, RunCatalogue catalogue, Path scratchDir) {
        this.objects = objects;
        this.catalogue = catalogue;
        this.scratchDir = scratchDir;
    }

    StageResult merge(ResidentModel r) throws IOException {
        TrainingSession.FinalEvaluation evaluation = r.finalEvaluation;
        String prefix = "runs/" + r.runId + "/merge/";
        Path file = tempFile("dense");
        try {
            Safetensors.write(file, denseTensors(r.session.model(), evaluation), Map.of("form", "dense-export"));
            objects.putFile(prefix + "dense.safetensors", file);
        } finally {
            Files.deleteIfExists(file);
        }
        return StageResult.output(Stage.MERGE, prefix, evaluations(evaluation));
    }

    StageResult evaluate(ResidentModel r) throws SQLException {
        Map<String, Double> values = evaluations(r.finalEvaluation);
        UUID id = UUID.fromString(r.runId);
        for (Map.Entry<String, Double> e : values.entrySet()) {
            // val_loss_sparse is recorded at the step it was measured (the sparse phase's end), where training
            // already recorded it: one row, not a second at the last step.
            int step = e.getKey().equals("val_loss_sparse") ? r.session.adapterStartStep() : r.session.totalSteps();
            catalogue.recordEval(id, step, e.getKey(), e.getValue());
        }
        return StageResult.output(Stage.EVAL, null, values);
    }

    StageResult export(ResidentModel r) throws IOException {
        String prefix = ExportManifest.prefix(r.runId);
        List<ExportManifest.File> files = new ArrayList<>();
        Path local = scratchDir.resolve("export-" + r.runId + "-" + System.nanoTime());
        try {
            GptModel model = r.session.model();
            var tokenizer = r.dataset.tokenizer();
            HfExport.write(local.resolve("hf"), model.config(), r.finalEvaluation.denseExport(), tokenizer);
            SlopeExport.write(local.resolve("slope"), model.config(), tokenizer, r.finalEvaluation.model());
            for (String kind : new String[] {"hf", "slope"}) {
                List<Path> exported;
                try (var walk = Files.walk(local.resolve(kind))) {
                    exported = walk.filter(Files::isRegularFile).sorted().toList();
                }
                for (Path file : exported) {
                    String path = local.relativize(file).toString();
                    objects.putFile(prefix + path, file);
                    files.add(new ExportManifest.File(path, kind, Files.size(file),
                            PipelineActivitiesImpl.sha256(file)));
                }
            }
        } finally {
            DurableFiles.deleteRecursively(local);
        }
        uploadBytes(prefix, "report/evaluation.json", reportJson(r.finalEvaluation), files);
        objects.putBytes(prefix + ExportManifest.NAME, new ExportManifest(files).toJson());
        return StageResult.output(Stage.EXPORT, prefix, Map.of("files", (double) files.size()));
    }

    private static Map<String, Double> evaluations(TrainingSession.FinalEvaluation e) {
        Map<String, Double> values = new LinkedHashMap<>();
        values.put("val_loss_sparse", e.valLossSparse());
        values.put("val_loss_adapters", e.valLossAdapters());
        values.put("val_loss_merged", e.valLossMerged());
        values.put("val_loss_inference_form", e.valLossInferenceForm());
        return values;
    }

    private static List<NamedTensor> denseTensors(GptModel model, TrainingSession.FinalEvaluation e) {
        Map<String, int[]> shapes = GptModel.parameterShapes(Merge.denseConfig(model.config()));
        List<NamedTensor> tensors = new ArrayList<>();
        for (Map.Entry<String, double[]> t : e.denseExport().entrySet()) {
            int[] shape = shapes.get(t.getKey());
            long[] dims = shape == null ? new long[] {t.getValue().length} : toLongs(shape);
            tensors.add(NamedTensor.f32(t.getKey(), dims, t.getValue()));
        }
        return tensors;
    }

    private static byte[] reportJson(TrainingSession.FinalEvaluation e) {
        StringBuilder json = new StringBuilder("{\n");
        var values = evaluations(e);
        int i = 0;
        for (var entry : values.entrySet()) {
            json.append("  \"").append(entry.getKey()).append("\": ").append(entry.getValue())
                    .append(++i < values.size() ? ",\n" : "\n");
        }
        return json.append("}\n").toString().getBytes(StandardCharsets.UTF_8);
    }

    private void uploadBytes(String prefix, String path, byte[] content, List<ExportManifest.File> files)
            throws IOException {
        objects.putBytes(prefix + path, content);
        files.add(new ExportManifest.File(path, "report", content.length, DurableFiles.sha256Hex(content)));
    }

    private Path tempFile(String what) throws IOException {
        Files.createDirectories(scratchDir);
        return scratchDir.resolve(what + "-" + System.nanoTime() + ".safetensors");
    }

    private static long[] toLongs(int[] shape) {
        long[] l = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            l[i] = shape[i];
        }
        return l;
    }
}
