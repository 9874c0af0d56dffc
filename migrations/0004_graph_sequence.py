from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_posts_and_media')]

    initial = False

    operations = [
        ops.AddField(
            model_name='User',
            name='graph_seq',
            field=fields.BigIntField(default=0),
        ),
    ]
