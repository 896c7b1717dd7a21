"""A model whose llama-server failed used to turn `error` itself, and so stopped being shared. Now the
failure lives on its ServedInstance; models that were marked so become `ready` again."""
from django.db import migrations


def forwards(apps, schema_editor):
    AIModel = apps.get_model("models_app", "AIModel")
    failed_serving = AIModel.objects.filter(status="error", instance__state="error").exclude(files__verified=False)
    failed_serving.update(status="ready")


class Migration(migrations.Migration):
    dependencies = [("models_app", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
