"""A torrent belongs to one copy of a model (the node that seeds or fetches it), no longer to the model."""

import django.db.models.deletion
from django.db import migrations, models

FIELDS = ("info_hash_v1", "info_hash_v2", "torrent_file", "magnet_source", "desired", "state", "error", "failed_bytes",
          "created_at", "updated_at")


def to_copies(apps, schema_editor):
    Legacy = apps.get_model("torrents_app", "LegacyTorrent")
    Torrent = apps.get_model("torrents_app", "Torrent")
    ModelCopy = apps.get_model("models_app", "ModelCopy")
    for old in Legacy.objects.all():
        copy = ModelCopy.objects.filter(model_id=old.model_id, node=old.node).first()
        if copy is not None:
            Torrent.objects.create(copy=copy, **{name: getattr(old, name) for name in FIELDS})


def from_copies(apps, schema_editor):
    Legacy = apps.get_model("torrents_app", "LegacyTorrent")
    Torrent = apps.get_model("torrents_app", "Torrent")
    for new in Torrent.objects.select_related("copy").order_by("-copy__created_at"):
        Legacy.objects.update_or_create(model_id=new.copy.model_id, defaults={
            "node": new.copy.node, **{name: getattr(new, name) for name in FIELDS}})


class Migration(migrations.Migration):

    dependencies = [
        ("models_app", "0007_copies"),
        ("torrents_app", "0003_alter_torrent_desired"),
    ]

    operations = [
        migrations.RenameModel("Torrent", "LegacyTorrent"),
        migrations.AlterField(
            model_name="legacytorrent",
            name="model",
            field=models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                       related_name="legacy_torrent", serialize=False, to="models_app.aimodel"),
        ),
        migrations.CreateModel(
            name="Torrent",
            fields=[
                ("copy", models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True,
                                              related_name="torrent", serialize=False, to="models_app.modelcopy")),
                ("info_hash_v1", models.CharField(blank=True, db_index=True, max_length=40)),
                ("info_hash_v2", models.CharField(blank=True, db_index=True, max_length=64)),
                ("torrent_file", models.BinaryField(blank=True, help_text="Bencoded .torrent (metadata)", null=True)),
                ("magnet_source", models.TextField(blank=True, help_text="The magnet a download was started from")),
                ("desired", models.CharField(choices=[("seed", "Seed"), ("pause", "Pause"), ("download", "Download"),
                                                      ("remove", "Remove"), ("lookup", "Lookup")],
                                             default="seed", max_length=20)),
                ("state", models.CharField(blank=True, help_text="libtorrent's state, as last seen", max_length=40)),
                ("error", models.TextField(blank=True)),
                ("failed_bytes", models.BigIntegerField(default=0,
                                                        help_text="Bytes received that failed their hash check")),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
            ],
        ),
        migrations.RunPython(to_copies, from_copies),
        migrations.DeleteModel("LegacyTorrent"),
    ]
