"""A model may be served on several nodes: an instance belongs to (model, node), no longer to the model alone."""

import django.db.models.deletion
from django.db import migrations, models

FIELDS = ("node", "desired", "state", "requested_port", "port", "host", "api_key", "pid", "context_size", "threads",
          "gpu_layers", "log_path", "error", "restarts", "next_start_at", "started_at", "last_used_at",
          "tokens_generated", "updated_at")


def to_per_node(apps, schema_editor):
    Legacy = apps.get_model("models_app", "LegacyInstance")
    ServedInstance = apps.get_model("models_app", "ServedInstance")
    for old in Legacy.objects.all():
        ServedInstance.objects.create(model_id=old.model_id, **{name: getattr(old, name) for name in FIELDS})


def from_per_node(apps, schema_editor):
    """Back to one instance per model: the most recently changed one stays."""
    Legacy = apps.get_model("models_app", "LegacyInstance")
    ServedInstance = apps.get_model("models_app", "ServedInstance")
    for new in ServedInstance.objects.order_by("updated_at"):
        Legacy.objects.update_or_create(model_id=new.model_id,
                                        defaults={name: getattr(new, name) for name in FIELDS})


class Migration(migrations.Migration):

    dependencies = [
        ("models_app", "0010_file_removal"),
    ]

    operations = [
        migrations.RenameModel("ServedInstance", "LegacyInstance"),
        migrations.AlterField(
            model_name="legacyinstance",
            name="model",
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                       related_name="legacy_instance", serialize=False, to="models_app.aimodel"),
        ),
        # Its index would bear the name the new table's index is given.
        migrations.AlterField(model_name="legacyinstance", name="node", field=models.CharField(max_length=200)),
        migrations.CreateModel(
            name="ServedInstance",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("model", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="instances",
                                            to="models_app.aimodel")),
                ("node", models.CharField(db_index=True, max_length=200)),
                ("desired", models.CharField(choices=[("serving", "serving"), ("stopped", "stopped")],
                                             default="serving", max_length=20)),
                ("state", models.CharField(choices=[("stopped", "Stopped"), ("starting", "Starting"),
                                                    ("serving", "Serving"), ("stopping", "Stopping"),
                                                    ("error", "Error")], default="stopped", max_length=20)),
                ("requested_port", models.IntegerField(blank=True, null=True)),
                ("port", models.IntegerField(blank=True, null=True)),
                ("host", models.CharField(blank=True, max_length=200)),
                ("api_key", models.CharField(blank=True, max_length=100)),
                ("pid", models.IntegerField(blank=True, null=True)),
                ("context_size", models.IntegerField(default=2048)),
                ("threads", models.IntegerField(default=4)),
                ("gpu_layers", models.IntegerField(default=0)),
                ("log_path", models.CharField(blank=True, max_length=1000)),
                ("error", models.TextField(blank=True)),
                ("restarts", models.IntegerField(default=0)),
                ("next_start_at", models.DateTimeField(blank=True, null=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("last_used_at", models.DateTimeField(blank=True, null=True)),
                ("tokens_generated", models.BigIntegerField(default=0)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
            options={
                "ordering": ["model", "node"],
                "constraints": [models.UniqueConstraint(fields=("model", "node"), name="one_instance_per_node")],
            },
        ),
        migrations.RunPython(to_per_node, from_per_node),
        migrations.DeleteModel("LegacyInstance"),
    ]
