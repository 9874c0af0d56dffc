from tortoise import migrations
from tortoise.migrations import operations as ops
from pictograph.ids import new_id
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(primary_key=True, generated=False, default=new_id, unique=True, db_index=True)),
                ('username', fields.CharField(unique=True, max_length=30)),
                ('display_name', fields.CharField(default='', max_length=64)),
                ('bio', fields.CharField(default='', max_length=300)),
                ('is_private', fields.BooleanField(default=False)),
                ('password_hash', fields.CharField(max_length=200)),
                ('follower_count', fields.IntField(default=0)),
                ('following_count', fields.IntField(default=0)),
                ('post_count', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'users', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuthToken',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='tokens', on_delete=OnDelete.CASCADE)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('revoked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'auth_tokens', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A bearer token, of which only the SHA-256 is stored.'},
            bases=['Model'],
        ),
    ]
