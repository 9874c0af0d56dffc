from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_garbage_not_before')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdNodeLease',
            fields=[
                ('node', fields.IntField(primary_key=True, generated=False, unique=True, db_index=True)),
                ('holder', fields.CharField(max_length=120)),
                ('claimed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'id_node_leases', 'app': 'models', 'pk_attr': 'node', 'table_description': 'Which process may mint ids on a node number, and until when. A row is claimed'},
            bases=['Model'],
        ),
    ]
