"""A model's file on a node becomes a copy of its own (SPEC §9): every model that has a node gets one
copy with its location, status, transfer figures and seeding wish; the model keeps what the file is."""

import django.db.models.deletion
from django.db import migrations, models

COPY_FIELDS = ("path", "download_progress", "download_rate", "upload_rate", "downloaded_bytes", "uploaded_bytes",
               "peers", "seeds", "peer_bytes", "web_seed_bytes", "http_bytes", "seeding", "task_id", "cancel_requested")
# A served model's status was its server's; its file was ready all along.
FILE_STATUS = {"starting": "ready", "serving": "ready", "stopping": "ready"}


def to_copies(apps, schema_editor):
    AIModel = apps.get_model("models_app", "AIModel")
    ModelCopy = apps.get_model("models_app", "ModelCopy")
    ServedInstance = apps.get_model("models_app", "ServedInstance")
    TransferSample = apps.get_model("models_app", "TransferSample")
    failed = set(ServedInstance.objects.filter(state="error").values_list("model_id", flat=True))
    for model in AIModel.objects.exclude(node=""):
        # A failed server's message lives on its instance; the copy keeps only its own errors.
        error = "" if model.pk in failed and model.status != "error" else model.error
        ModelCopy.objects.create(model=model, node=model.node, status=FILE_STATUS.get(model.status, model.status),
                                 error=error, **{name: getattr(model, name) for name in COPY_FIELDS})
        TransferSample.objects.filter(model=model).update(node=model.node)


def from_copies(apps, schema_editor):
    AIModel = apps.get_model("models_app", "AIModel")
    ModelCopy = apps.get_model("models_app", "ModelCopy")
    ServedInstance = apps.get_model("models_app", "ServedInstance")
    serving = dict(ServedInstance.objects.filter(state__in=["starting", "serving", "stopping"])
                   .values_list("model_id", "state"))
    for copy in ModelCopy.objects.order_by("-created_at"):  # the oldest copy is the one kept
        fields = {name: getattr(copy, name) for name in COPY_FIELDS}
        status = serving.get(copy.model_id, copy.status) if copy.status == "ready" else copy.status
        AIModel.objects.filter(pk=copy.model_id).update(node=copy.node, status=status, error=copy.error, **fields)


class Migration(migrations.Migration):

    dependencies = [
        ("models_app", "0006_transfersample"),
    ]

    operations = [
        migrations.CreateModel(
            name="ModelCopy",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("node", models.CharField(db_index=True, max_length=200)),
                ("path", models.CharField(blank=True, help_text="Absolute folder holding the model's files",
                                          max_length=1000)),
                ("status", models.CharField(choices=[("queued", "Queued"), ("downloading", "Downloading"),
                                                     ("verifying", "Verifying"), ("ready", "Ready"), ("error", "Error")],
                                            db_index=True, default="queued", max_length=20)),
                ("error", models.TextField(blank=True)),
                ("download_progress", models.FloatField(default=0)),
                ("download_rate", models.BigIntegerField(default=0)),
                ("upload_rate", models.BigIntegerField(default=0)),
                ("downloaded_bytes", models.BigIntegerField(default=0)),
                ("uploaded_bytes", models.BigIntegerField(default=0)),
                ("peers", models.IntegerField(default=0)),
                ("seeds", models.IntegerField(default=0)),
                ("peer_bytes", models.BigIntegerField(default=0)),
                ("web_seed_bytes", models.BigIntegerField(default=0)),
                ("http_bytes", models.BigIntegerField(default=0)),
                ("seeding", models.BooleanField(default=True, help_text="Desired: seed these files when they are ready")),
                ("task_id", models.CharField(blank=True, max_length=64)),
                ("cancel_requested", models.BooleanField(default=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("model", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="copies",
                                            to="models_app.aimodel")),
            ],
            options={"ordering": ["model", "created_at"], "verbose_name_plural": "model copies"},
        ),
        migrations.AddConstraint(
            model_name="modelcopy",
            constraint=models.UniqueConstraint(fields=("model", "node"), name="one_copy_per_node"),
        ),
        migrations.AddField(
            model_name="transfersample",
            name="node",
            field=models.CharField(blank=True, db_index=True, max_length=200),
        ),
        migrations.RunPython(to_copies, from_copies),
    ]
