from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_id_node_leases')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RedisEpoch',
            fields=[
                ('name', fields.CharField(primary_key=True, generated=False, unique=True, db_index=True, max_length=64)),
                ('epoch', fields.CharField(max_length=64)),
                ('run_id', fields.CharField(max_length=64)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'redis_epochs', 'app': 'models', 'pk_attr': 'name', 'table_description': 'Which Redis instance the caches were last vouched for, and the epoch its marker'},
            bases=['Model'],
        ),
    ]
