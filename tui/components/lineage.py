"""The lineage pane: a model's DAG as a tree, main lines flat and branches indented.

A version's first parent decides where it hangs (as in git's first-parent history); a chain of
single children stays on one level so long histories do not drift right. Versions with several
parents are drawn with a merge mark naming the others, and each other parent gets a link row.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from mvcdb.models import Version

from ..data import Lineage, short, when_text


class LineagePane(Tree[str]):
    """Tree whose node data is the full version id it stands for."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(Text("lineage"), id=id)  # Text: no markup to read (see VersionsTable)
        self.model: str | None = None
        self.nodes: dict[str, TreeNode[str]] = {}
        self.show_root = False
        self.guide_depth = 3

    def show_lineage(self, lineage: Lineage) -> None:
        """Replace the tree with a model's lineage."""
        self.clear()
        self.nodes = {}
        self.model = lineage.model
        self.border_title = f"lineage · {lineage.model}"
        if lineage.truncated:
            self.root.add_leaf(Text("… older versions not shown", style="dim"))
        for root_id in lineage.roots:
            self._add_chain(self.root, root_id, lineage)
        self.root.expand()

    def show_nothing(self) -> None:
        """No version is shown (a filter matched none): an empty tree, and no model, so the next
        version shown loads its model's lineage again."""
        self.clear()
        self.nodes = {}
        self.model = None
        self.border_title = "lineage"

    def _add_chain(self, parent: TreeNode[str], start: str, lineage: Lineage) -> None:
        """Add a first-parent chain under `parent`: single children follow on the same level."""
        pending: list[tuple[TreeNode[str], str]] = [(parent, start)]
        while pending:
            where, current = pending.pop()
            while True:
                node_info = lineage.nodes[current]
                kids = node_info.children
                links = lineage.merge_links.get(current, [])
                label = self._label(node_info.version, lineage)
                if len(kids) > 1 or links:
                    node = where.add(label, data=current, expand=True)
                else:
                    node = where.add_leaf(label, data=current)
                self.nodes[current] = node
                for merge_child in links:
                    node.add_leaf(
                        Text(f"↘ merged into {short(merge_child)}", style="italic magenta"), data=merge_child
                    )
                if not kids:
                    break
                # Side branches hang under the branch point; the oldest child continues the line.
                for branch in reversed(kids[1:]):
                    pending.append((node, branch))
                current = kids[0]

    def _label(self, v: Version, lineage: Lineage) -> Text:
        label = Text()
        if len(v.parents) > 1:
            label.append("⑂ ", style="bold magenta")
        else:
            label.append("● " if v.parents and v.parents[0] in lineage.nodes else "◉ ", style="cyan")
        label.append(v.short_id, style="bold")
        label.append(f"  {when_text(v.created_at)[:16]}", style="dim")
        if v.tags:
            label.append(f"  [{', '.join(v.tags)}]", style="bold green")
        if v.message:
            label.append(f"  {v.message.splitlines()[0][:40]}")
        if len(v.parents) > 1:
            others = ", ".join(short(p) for p in v.parents[1:])
            label.append(f"  merge of {short(v.parents[0])} + {others}", style="magenta")
        return label

    def reveal(self, version_id: str) -> bool:
        """Move the cursor to a version's node (expanding its ancestors); False if not drawn."""
        node = self.nodes.get(version_id)
        if node is None:
            return False
        parent = node.parent
        while parent is not None:
            if not parent.is_expanded:
                parent.expand()
            parent = parent.parent
        if self.cursor_node is not node:
            self.call_after_refresh(self._move_to, node)
        return True

    def _move_to(self, node: TreeNode[str]) -> None:
        self.move_cursor(node)
        self.scroll_to_node(node, animate=False)
