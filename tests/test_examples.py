"""The examples: each domain by given/when/then, the bank's money law, every story end to end."""

from __future__ import annotations

import itertools
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from conftest import POSTGRES_URL
from hypothesis import given as for_all
from hypothesis import settings
from hypothesis import strategies as st
from returns.result import Success

from eventsourcing_fn import CommandError, Recorded, Send, StreamClosedError, Worker
from eventsourcing_fn.storage import memory_storage, sqlite_storage
from eventsourcing_fn.testing import given, recorded
from examples import bank, catalog, orders, users
from examples.bank import accounts, transfers

ROOT = Path(__file__).resolve().parent.parent
SALT = "00" * 16
OTHER_SALT = "11" * 16


def on(stream_id: str, *events: object) -> list[Recorded[Any]]:
    """`events` as the successive versions of one stream."""
    return [recorded(e, stream_id=stream_id, version=i) for i, e in enumerate(events, 1)]


# -- users -------------------------------------------------------------------------------------


def ann_registered(password: str = "correct horse") -> users.Registered:
    return users.Registered("ann", users.hash_password(password, SALT))


class TestUserRegistration:
    def test_registration_records_a_salted_hash(self) -> None:
        """Registering records the name and the hash of the password with the command's salt."""
        given(users.users).when(users.Register("ann", "correct horse", SALT)).then(ann_registered())

    def test_the_password_is_nowhere_in_the_event(self) -> None:
        """Neither the event's fields nor its repr hold the plain password."""
        event = ann_registered()
        assert "correct horse" not in repr(attrs.asdict(event))
        assert event.password.matches("correct horse")
        assert not event.password.matches("Correct horse")

    def test_the_same_password_hashes_differently_with_another_salt(self) -> None:
        """Salts make equal passwords of two users look unrelated."""
        digest = users.hash_password("correct horse", SALT).digest
        assert users.hash_password("correct horse", OTHER_SALT).digest != digest

    def test_registering_twice_is_rejected(self) -> None:
        """A user registers once."""
        given(users.users, ann_registered()).when(
            users.Register("ann", "correct horse", SALT)
        ).then_fails(users.AlreadyRegistered)

    def test_bad_usernames_and_short_passwords_are_rejected(self) -> None:
        """Usernames are 1 to 32 word characters, dots or dashes; passwords 8 characters or more."""
        given(users.users).when(users.Register("a n", "correct horse")).then_fails(
            users.InvalidUsername
        )
        given(users.users).when(users.Register("ann", "short")).then_fails(users.WeakPassword)

    def test_commands_do_not_show_passwords(self) -> None:
        """A command's repr, seen in failures and logs, leaves out the password and salt."""
        assert "secret" not in repr(users.ChangePassword("old secret", "new secret"))


class TestUserRenaming:
    def test_renaming_records_both_names(self) -> None:
        """`UserRenamed` carries the old name and the new."""
        given(users.users, ann_registered()).when(users.Rename("annie")).then(
            users.UserRenamed("ann", "annie")
        )

    def test_renaming_to_the_current_name_records_nothing(self) -> None:
        """Renaming to the same name is a no-op."""
        given(users.users, ann_registered()).when(users.Rename("ann")).then()

    def test_renaming_an_unknown_user_is_rejected(self) -> None:
        """Only registered users can be renamed."""
        given(users.users).when(users.Rename("annie")).then_fails(users.NotRegistered)


class TestPasswordChanges:
    def test_a_new_password_is_hashed_and_kept(self) -> None:
        """The change records the new hash; the state keeps every hash, the current last."""
        new = users.hash_password("battery staple", OTHER_SALT)
        change = users.ChangePassword("correct horse", "battery staple", OTHER_SALT)
        given(users.users, ann_registered()).when(change).then(users.PasswordChanged(new))
        given(users.users, ann_registered()).when(change).then_state(
            users.User("ann", (ann_registered().password, new))
        )

    def test_the_current_password_is_required(self) -> None:
        """A change with the wrong current password is rejected."""
        given(users.users, ann_registered()).when(
            users.ChangePassword("wrong one", "battery staple")
        ).then_fails(users.WrongPassword)

    @pytest.mark.parametrize("reused", ["correct horse", "battery staple"])
    def test_no_earlier_password_comes_back(self, reused: str) -> None:
        """Neither the first nor a later earlier password is accepted again."""
        history = [
            ann_registered(),
            users.PasswordChanged(users.hash_password("battery staple", OTHER_SALT)),
            users.PasswordChanged(users.hash_password("purple monkey", SALT)),
        ]
        given(users.users, *history).when(users.ChangePassword("purple monkey", reused)).then_fails(
            users.PasswordReused
        )


class TestPasswordHistory:
    def test_history_follows_renames_and_changes(self) -> None:
        """The document holds the current name and when each password was set."""
        at = [datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3)]
        events = [
            ann_registered(),
            users.UserRenamed("ann", "annie"),
            users.PasswordChanged(users.hash_password("battery staple", SALT)),
        ]
        stream = [
            recorded(e, stream_id="u1", version=i, recorded_at=t)
            for i, (e, t) in enumerate(zip(events, at, strict=True), 1)
        ]
        given(users.password_history, *stream).then_documents(
            {"u1": users.PasswordHistory("annie", (at[0], at[2]))}
        )


# -- bank --------------------------------------------------------------------------------------


class TestBankAccounts:
    def test_opening_with_a_deposit(self) -> None:
        """An account opens with its owner and, if any, a first deposit."""
        given(accounts.account).when(accounts.Open("ann", 100)).then(
            accounts.Opened("ann"), accounts.Deposited(100)
        )

    def test_a_debit_beyond_the_balance_is_refused_as_an_event(self) -> None:
        """Refusals are events the transfer process can react to, not rejections."""
        given(accounts.account, accounts.Opened("ann"), accounts.Deposited(10)).when(
            accounts.Debit("t1", 30)
        ).then(accounts.DebitRefused("t1", "insufficient funds: balance 10, asked 30"))

    def test_credits_to_closed_or_missing_accounts_are_refused(self) -> None:
        """A closed account, or one never opened, refuses a credit."""
        given(accounts.account, accounts.Opened("ann"), accounts.Closed()).when(
            accounts.Credit("t1", 5)
        ).then(accounts.CreditRefused("t1", "account closed"))
        given(accounts.account).when(accounts.Credit("t1", 5)).then(
            accounts.CreditRefused("t1", "no such account")
        )

    def test_a_refund_always_lands(self) -> None:
        """The money came from this account: it goes back, even to a closed one."""
        given(accounts.account, accounts.Opened("ann"), accounts.Closed()).when(
            accounts.Refund("t1", 5)
        ).then(accounts.Refunded("t1", 5))

    def test_closing_needs_a_zero_balance(self) -> None:
        """An account with money in it does not close."""
        given(accounts.account, accounts.Opened("ann"), accounts.Deposited(1)).when(
            accounts.Close()
        ).then_fails(accounts.NotEmpty)


class TestBankTransfers:
    def test_a_transfer_needs_a_positive_amount_and_two_accounts(self) -> None:
        """Nothing starts for zero, or from an account to itself."""
        given(transfers.transfer).when(transfers.StartTransfer("a", "b", 0)).then_fails(
            accounts.InvalidAmount
        )
        given(transfers.transfer).when(transfers.StartTransfer("a", "a", 5)).then_fails(
            transfers.SameAccount
        )

    def test_a_settled_transfer_takes_no_more_commands(self) -> None:
        """Completed, compensated or declined: the transfer's stream is closed."""
        given(
            transfers.transfer,
            transfers.TransferStarted("a", "b", 5),
            transfers.TransferCompleted(),
        ).when(transfers.Compensate("late")).then_fails(StreamClosedError)


STARTED = recorded(transfers.TransferStarted("a", "b", 10), stream_id="t1")


class TestTransferProcess:
    def test_a_started_transfer_debits_the_source(self) -> None:
        """The first step takes the money from the source."""
        given(transfers.transfer_process, STARTED).then_sends(
            Send(accounts.account, "a", accounts.Debit("t1", 10))
        )

    def test_a_debit_credits_the_target(self) -> None:
        """Once debited, the money goes to the target the process remembered."""
        given(transfers.transfer_process, STARTED).when(accounts.Debited("t1", 10)).then_sends(
            Send(accounts.account, "b", accounts.Credit("t1", 10))
        )

    def test_a_credit_completes_the_transfer(self) -> None:
        """Credited: the transfer is completed."""
        given(transfers.transfer_process, STARTED, accounts.Debited("t1", 10)).when(
            accounts.Credited("t1", 10)
        ).then_sends(Send(transfers.transfer, "t1", transfers.Complete()))

    def test_a_refused_credit_refunds_the_source_then_compensates(self) -> None:
        """Compensation: refund the source, then mark the transfer compensated, with the why."""
        history = [STARTED, accounts.Debited("t1", 10)]
        refused = accounts.CreditRefused("t1", "account closed")
        given(transfers.transfer_process, *history).when(refused).then_sends(
            Send(accounts.account, "a", accounts.Refund("t1", 10))
        )
        given(transfers.transfer_process, *history, refused).when(
            accounts.Refunded("t1", 10)
        ).then_sends(Send(transfers.transfer, "t1", transfers.Compensate("account closed")))

    def test_a_refused_debit_declines_the_transfer(self) -> None:
        """No money moved: the transfer is declined."""
        given(transfers.transfer_process, STARTED).when(
            accounts.DebitRefused("t1", "no such account")
        ).then_sends(Send(transfers.transfer, "t1", transfers.Decline("no such account")))

    def test_the_process_forgets_settled_transfers(self) -> None:
        """Only transfers in flight are remembered."""
        given(transfers.transfer_process, STARTED).then_state(
            {"t1": transfers.InFlight("a", "b", 10)}
        )
        settled = recorded(transfers.TransferCompleted(), stream_id="t1", version=2)
        given(transfers.transfer_process, STARTED, accounts.Debited("t1", 10), settled).then_state(
            {}
        )

    def test_a_worker_compensates_too(self, tmp_path: Path) -> None:
        """With inline=False, a worker runs each step on its own and still refunds the source."""
        path = tmp_path / "bank.db"
        with (
            bank.open_bank(sqlite_storage(path), inline=False) as web,
            bank.open_bank(sqlite_storage(path), inline=False) as worker_store,
        ):
            ann = web.execute(accounts.account, None, accounts.Open("ann", 100)).unwrap().stream_id
            tid = bank.send_money(web, ann, "nobody", 30).unwrap().stream_id
            assert web.load(transfers.transfer, tid).state.status is transfers.Status.STARTED
            Worker(worker_store, poll=0.05, lease=1.0).run_once()
            assert web.load(transfers.transfer, tid).state.status is transfers.Status.COMPENSATED
            assert web.load(accounts.account, ann).state.balance == 100


Step = tuple[str, int, int, int]
steps = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 4), st.integers(0, 4), st.integers(1, 120)),
    st.tuples(st.just("close"), st.integers(0, 3), st.just(0), st.just(0)),
)


class TestMoneyLaw:
    @pytest.mark.parametrize("backend", ["memory", "sqlite"])
    @settings(max_examples=25, deadline=None)
    @for_all(
        deposits=st.lists(st.integers(0, 100), min_size=4, max_size=4),
        script=st.lists(steps, min_size=4, max_size=12),
    )
    def test_money_is_never_created_or_lost(
        self, backend: str, deposits: list[int], script: list[Step]
    ) -> None:
        """Balances always sum to the deposits; every transfer settles as a plain model predicts."""
        # Accounts 0-3 are opened, 4 never is. The model: a transfer is declined when its source
        # cannot pay (closed, never opened, too poor), compensated when its target cannot take
        # the money (closed, never opened), else completed; only an empty account closes.
        with tempfile.TemporaryDirectory() as tmp:
            storage = (
                memory_storage() if backend == "memory" else sqlite_storage(Path(tmp) / "b.db")
            )
            with bank.open_bank(storage) as store:
                ids = [
                    store.execute(accounts.account, None, accounts.Open(f"o{i}", d))
                    .unwrap()
                    .stream_id
                    for i, d in enumerate(deposits)
                ] + ["never-opened"]
                model, closed = [*deposits, 0], {4}
                for kind, a, b, amount in script:
                    if kind == "close":
                        closing = store.execute(accounts.account, ids[a], accounts.Close())
                        assert isinstance(closing, Success) == (model[a] == 0)
                        if model[a] == 0:
                            closed.add(a)
                        continue
                    result = bank.send_money(store, ids[a], ids[b], amount)
                    if a == b:
                        error = result.failure()
                        assert isinstance(error, CommandError)
                        assert isinstance(error.reason, transfers.SameAccount)
                        continue
                    status = store.load(transfers.transfer, result.unwrap().stream_id).state.status
                    if a in closed or model[a] < amount:
                        assert status is transfers.Status.DECLINED
                    elif b in closed:
                        assert status is transfers.Status.COMPENSATED
                    else:
                        assert status is transfers.Status.COMPLETED
                        model[a], model[b] = model[a] - amount, model[b] + amount
                balances = [store.load(accounts.account, i).state.balance for i in ids]
                assert balances == model
                assert sum(balances) == sum(deposits)
                assert (
                    len(store.documents(transfers.transfer_process)) == 0
                )  # nothing left in flight


# -- orders ------------------------------------------------------------------------------------

PLACED = orders.OrderPlaced("ann", "book", 2)
PAID = orders.PaymentReceived(20)
RESERVED = orders.StockReserved("book", 2)


class TestOrderAggregates:
    def test_an_order_ships_once(self) -> None:
        """Shipping a shipped order records nothing more."""
        given(orders.order, PLACED).when(orders.Ship()).then(orders.OrderShipped())
        given(orders.order, PLACED, orders.OrderShipped()).when(orders.Ship()).then()

    def test_an_order_never_placed_does_not_ship(self) -> None:
        """There is nothing to ship."""
        given(orders.order).when(orders.Ship()).then_fails(orders.NotPlaced)

    def test_an_order_is_paid_once(self) -> None:
        """A second payment is rejected."""
        given(orders.payment).when(orders.Pay(20)).then(PAID)
        given(orders.payment, PAID).when(orders.Pay(20)).then_fails(orders.AlreadyPaid)

    def test_reserving_twice_reserves_once(self) -> None:
        """A repeated reservation records nothing more."""
        given(orders.reservation, RESERVED).when(orders.Reserve("book", 2)).then()


class TestShipping:
    @pytest.mark.parametrize("events", list(itertools.permutations([PLACED, PAID, RESERVED])))
    def test_ships_once_both_happened_in_any_order(self, events: Sequence[object]) -> None:
        """Placed, paid and reserved, whichever comes when: exactly one Ship, at the last."""
        given(orders.shipping, *on("o1", *events)).then_sends(
            Send(orders.order, "o1", orders.Ship())
        )

    def test_waits_for_the_missing_half(self) -> None:
        """Paid but not reserved: nothing ships yet; the progress is remembered."""
        given(orders.shipping, *on("o1", PLACED, PAID)).then_sends().then_state(
            {"o1": orders.Progress(placed=True, paid=True)}
        )

    def test_orders_are_kept_apart(self) -> None:
        """One order's payment and another's reservation ship neither."""
        events = [*on("o1", PLACED, PAID), *on("o2", PLACED, RESERVED)]
        given(orders.shipping, *events).then_sends()

    def test_a_shipped_order_is_forgotten(self) -> None:
        """Once shipped, shipping keeps no state for the order."""
        shipped = recorded(orders.OrderShipped(), stream_id="o1", version=2)
        given(orders.shipping, *on("o1", PLACED, PAID, RESERVED), shipped).then_state({})


OPEN_ORDERS = "SELECT order_id, customer, sku, quantity, paid, reserved FROM open_orders ORDER BY 1"


class TestOpenOrdersTable:
    def test_a_placed_order_is_open(self) -> None:
        """Placing an order adds its row."""
        given(orders.open_orders, *on("o1", PLACED)).then_rows(
            OPEN_ORDERS, [("o1", "ann", "book", 2, 0, 0)]
        )

    def test_a_payment_before_the_order_fills_the_same_row(self) -> None:
        """Whichever event comes first creates the row; the others fill their columns."""
        given(orders.open_orders, *on("o1", PAID, RESERVED), *on("o1", PLACED)).then_rows(
            OPEN_ORDERS, [("o1", "ann", "book", 2, 1, 1)]
        )

    def test_a_shipped_order_leaves_the_table(self) -> None:
        """Shipping removes the row."""
        events = [*on("o1", PLACED, orders.OrderShipped()), *on("o2", PLACED)]
        given(orders.open_orders, *events).then_rows(OPEN_ORDERS, [("o2", "ann", "book", 2, 0, 0)])

    def test_reset_and_reset_stream_clear_all_or_one_order(self) -> None:
        """`reset_stream` deletes one order's row, `reset` every row."""
        scenario = given(orders.open_orders, *on("o1", PLACED), *on("o2", PLACED))
        assert len(scenario.query(OPEN_ORDERS)) == 2
        orders.clear_order(scenario.connection, "o1")
        assert [row[0] for row in scenario.query(OPEN_ORDERS)] == ["o2"]
        orders.clear_table(scenario.connection)
        scenario.then_rows(OPEN_ORDERS, [])


# -- catalog -----------------------------------------------------------------------------------

BOOKS = recorded(catalog.CategoryCreated("books"), stream_id="c1")
DUNE = recorded(catalog.ProductAdded("Dune", "c1"), stream_id="p1")
EMMA = recorded(catalog.ProductAdded("Emma", "c1"), stream_id="p2")
BOOKS_REMOVED = recorded(catalog.CategoryRemoved(), stream_id="c1", version=2)


class TestCatalogAggregates:
    def test_a_removed_category_takes_no_more_commands(self) -> None:
        """Removing twice is a closed stream."""
        given(catalog.category, catalog.CategoryCreated("books"), catalog.CategoryRemoved()).when(
            catalog.RemoveCategory()
        ).then_fails(StreamClosedError)

    def test_a_removed_product_names_its_category(self) -> None:
        """The removal carries the category, so the cascade knows whose product went."""
        given(catalog.product, catalog.ProductAdded("Dune", "c1")).when(
            catalog.RemoveProduct()
        ).then(catalog.ProductRemoved("c1"))


class TestCascade:
    def test_removing_a_category_removes_each_of_its_products(self) -> None:
        """One RemoveProduct per product the category holds."""
        given(catalog.contents, BOOKS, DUNE, EMMA).when(BOOKS_REMOVED).then_sends(
            Send(catalog.product, "p1", catalog.RemoveProduct()),
            Send(catalog.product, "p2", catalog.RemoveProduct()),
        )

    def test_products_removed_before_are_not_removed_again(self) -> None:
        """The process forgets a product once it is removed."""
        dune_removed = recorded(catalog.ProductRemoved("c1"), stream_id="p1", version=2)
        given(catalog.contents, BOOKS, DUNE, EMMA, dune_removed).when(BOOKS_REMOVED).then_sends(
            Send(catalog.product, "p2", catalog.RemoveProduct())
        )

    def test_a_product_added_to_a_removed_or_unknown_category_is_taken_off(self) -> None:
        """A late arrival cannot outlive its category; a live category keeps its products."""
        late = recorded(catalog.ProductAdded("Ulysses", "c1"), stream_id="p3")
        remove_late = Send(catalog.product, "p3", catalog.RemoveProduct())
        given(catalog.contents, BOOKS, BOOKS_REMOVED).when(late).then_sends(remove_late)
        given(catalog.contents).when(late).then_sends(remove_late)
        given(catalog.contents, BOOKS).when(late).then_sends()

    def test_the_cascade_is_one_transaction(self) -> None:
        """The removal returns with its products' removals in `Outcome.cascade`."""
        store = catalog.catalog()
        books = store.execute(catalog.category, None, catalog.CreateCategory("books")).unwrap()
        add = catalog.AddProduct("Dune", books.stream_id)
        dune = store.execute(catalog.product, None, add).unwrap().stream_id
        removed = store.execute(catalog.category, books.stream_id, catalog.RemoveCategory())
        assert [r.stream_id for r in removed.unwrap().cascade] == [dune]
        assert store.load(catalog.product, dune).state.removed


class TestListings:
    def test_a_listing_follows_its_products_and_goes_with_its_category(self) -> None:
        """Products come and go; removing the category deletes its listing."""
        dune_removed = recorded(catalog.ProductRemoved("c1"), stream_id="p1", version=2)
        listing = catalog.Listing("books", (catalog.Item("p2", "Emma"),))
        given(catalog.listings, BOOKS, DUNE, EMMA, dune_removed).then_documents({"c1": listing})
        given(catalog.listings, BOOKS, DUNE, BOOKS_REMOVED).then_documents({})


# -- every story, end to end -------------------------------------------------------------------

STORIES: dict[str, tuple[Callable[[Sequence[str] | None], int], list[str]]] = {
    "users": (
        users.main,
        [
            "rename ann to annie -> UserRenamed",
            "change it back to the first one -> rejected: PasswordReused",
            "plain passwords in the stored events: none",
            "password history of annie: set 3 times",
        ],
    ),
    "bank": (
        bank.main,
        [
            "send 30 ann -> bob: completed",
            "send 500 ann -> bob: declined (insufficient funds: balance 70, asked 500)",
            "send 20 ann -> carol: compensated (account closed)",
            "TransferStarted, Debited, CreditRefused, Refunded, TransferCompensated",
            "send 10 bob -> dave: compensated (no such account)",
            "balances: {'ann': 70, 'bob': 80, 'carol': 0}, total 150",
            "transfers in flight: 0",
        ],
    ),
    "orders": (
        orders.main,
        [
            "reserve stock for A -> StockReserved, OrderShipped",
            "pay for B -> PaymentReceived, OrderShipped",
            "pay for A again -> rejected: AlreadyPaid",
            "open order C: cat, 1 x mug, paid=True, reserved=False",
            "order C's row deleted, then replayed: back as it was",
            "shipping still tracks: ['C']",
        ],
    ),
    "catalog": (
        catalog.main,
        [
            "remove books -> CategoryRemoved, ProductRemoved, ProductRemoved",
            "add Ulysses to books -> ProductAdded, ProductRemoved",
            "remove books again -> rejected: StreamClosedError",
            "listing books: (removed) listing garden: Rake",
            "products removed: ['Dune', 'Emma']",
        ],
    ),
}


def told_all(output: str, expected: list[str]) -> None:
    """Each expected line is in the output, whitespace aside."""
    flat = " ".join(output.split())
    missing = [line for line in expected if line not in flat]
    assert not missing, f"missing {missing} in:\n{output}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_args(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """The arguments that point a story at a new SQLite file or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return [str(tmp_path / "story.db")]
    return [POSTGRES_URL, "--schema", request.getfixturevalue("pg_schema")]


@pytest.fixture(scope="module", autouse=True)
def module_runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every example as `python -m examples.<name>`, started with the module's first test."""
    runs = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"examples.{name}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in STORIES
    }
    yield runs
    for run in runs.values():
        if run.poll() is None:
            run.kill()
        run.communicate()


@pytest.mark.parametrize("name", STORIES)
class TestStories:
    def test_the_story_runs_twice_on_one_store(
        self, name: str, store_args: list[str], capsys: pytest.CaptureFixture[str]
    ) -> None:
        """`main` tells its story, and tells it again on the same store (new ids each run)."""
        main, expected = STORIES[name]
        for _ in range(2):
            assert main(store_args) == 0
            told_all(capsys.readouterr().out, expected)

    def test_the_story_runs_as_a_module(
        self, name: str, module_runs: dict[str, subprocess.Popen[str]]
    ) -> None:
        """`python -m examples.<name>` from the repository root, on a temporary SQLite file."""
        out, err = module_runs[name].communicate(timeout=60)
        assert module_runs[name].returncode == 0, err
        assert out.startswith("store: SQLite, ")
        told_all(out, STORIES[name][1])
